#include "adamas/core/hadamard.h"

#include <bit>
#include <cmath>
#include <vector>

#include "common/check.h"

namespace adamas {

void check_head_dim(int d) {
  ADAMAS_CHECK(
      d >= kMinHeadDim && d <= kMaxHeadDim && std::has_single_bit(static_cast<unsigned>(d)),
      "head_dim must be a power of two in [{}, {}], got {}", kMinHeadDim, kMaxHeadDim, d);
}

namespace ref {

void hadamard_transform(float* data, size_t rows, int d, size_t row_stride) {
  check_head_dim(d);
  ADAMAS_CHECK(row_stride >= static_cast<size_t>(d), "row_stride {} is smaller than d {}",
               row_stride, d);
  const double scale = 1.0 / std::sqrt(static_cast<double>(d));
  std::vector<double> out(d);
  for (size_t r = 0; r < rows; ++r) {
    float* x = data + r * row_stride;
    for (int j = 0; j < d; ++j) {
      double acc = 0;
      for (int i = 0; i < d; ++i) {
        const bool negative = std::popcount(static_cast<unsigned>(i & j)) & 1;
        acc += negative ? -double{x[i]} : double{x[i]};
      }
      out[j] = acc * scale;
    }
    for (int j = 0; j < d; ++j) x[j] = static_cast<float>(out[j]);
  }
}

}  // namespace ref
}  // namespace adamas
