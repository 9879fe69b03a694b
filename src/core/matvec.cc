// Reference of core/matvec.h: the plain double loop, fp64 accumulation.
#include "adamas/core/matvec.h"

#include <vector>

namespace adamas::ref {

void matvec(const float* x, int n, int cols, const void* W, DType wtype, int row_begin, int row_end,
            float* y, size_t y_stride) {
  std::vector<float> w(cols);
  const size_t row_bytes = size_t(cols) * dtype_size(wtype);
  for (int r = row_begin; r < row_end; ++r) {
    convert_to_f32(static_cast<const std::byte*>(W) + r * row_bytes, wtype, w.data(), cols);
    for (int i = 0; i < n; ++i) {
      double s = 0;
      for (int j = 0; j < cols; ++j) s += double{w[j]} * x[size_t(i) * cols + j];
      y[size_t(i) * y_stride + r] = static_cast<float>(s);
    }
  }
}

}  // namespace adamas::ref
