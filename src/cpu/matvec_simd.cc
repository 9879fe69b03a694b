// y = x · Wᵀ for a few rows x (core/matvec.h), Highway SIMD with run-time dispatch. Each weight
// row is streamed once and converted to fp32 in registers; up to four x rows share each loaded
// weight vector (more rows re-read the weight row from L1, not from memory).
#include <algorithm>

#include "adamas/core/matvec.h"
#include "common/check.h"

// foreach_target.h must come first, the per-target headers after it.
// clang-format off
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "cpu/matvec_simd.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "cpu/load_row-inl.h"
// clang-format on

HWY_BEFORE_NAMESPACE();
namespace adamas::cpu {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;
using DF = hn::ScalableTag<float>;
using VF = hn::Vec<DF>;

// Rows x[i0 .. i0 + G) against one weight row: G dot products.
template <DType T, int G>
HWY_INLINE void DotGroup(const float* HWY_RESTRICT x, int cols, const std::byte* HWY_RESTRICT w,
                         float* out) {
  const DF df;
  const size_t N = hn::Lanes(df);
  VF acc[G];
  for (int g = 0; g < G; ++g) acc[g] = hn::Zero(df);
  size_t j = 0;
  for (; j + N <= static_cast<size_t>(cols); j += N) {
    const VF wj = LoadRow<T>(df, w, j);
    for (int g = 0; g < G; ++g)
      acc[g] = hn::MulAdd(wj, hn::LoadU(df, x + g * size_t(cols) + j), acc[g]);
  }
  for (int g = 0; g < G; ++g) {
    float s = hn::GetLane(hn::SumOfLanes(df, acc[g]));
    for (size_t t = j; t < static_cast<size_t>(cols); ++t) {
      float wt;
      convert_to_f32(w + t * dtype_size(T), T, &wt, 1);
      s += wt * x[g * size_t(cols) + t];
    }
    out[g] = s;
  }
}

template <DType T>
void MatvecT(const float* x, int n, int cols, const void* W, int r0, int r1, float* y,
             size_t y_stride) {
  const size_t row_bytes = size_t(cols) * dtype_size(T);
  float tmp[4];
  for (int r = r0; r < r1; ++r) {
    const std::byte* w = static_cast<const std::byte*>(W) + size_t(r) * row_bytes;
    for (int i = 0; i < n;) {
      const float* xi = x + size_t(i) * cols;
      const int g = std::min(4, n - i);
      switch (g) {
        case 4:
          DotGroup<T, 4>(xi, cols, w, tmp);
          break;
        case 3:
          DotGroup<T, 3>(xi, cols, w, tmp);
          break;
        case 2:
          DotGroup<T, 2>(xi, cols, w, tmp);
          break;
        default:
          DotGroup<T, 1>(xi, cols, w, tmp);
          break;
      }
      for (int k = 0; k < g; ++k) y[size_t(i + k) * y_stride + r] = tmp[k];
      i += g;
    }
  }
}

void Matvec(const float* x, int n, int cols, const void* W, DType t, int r0, int r1, float* y,
            size_t y_stride) {
  switch (t) {
    case DType::kF32:
      return MatvecT<DType::kF32>(x, n, cols, W, r0, r1, y, y_stride);
    case DType::kF16:
      return MatvecT<DType::kF16>(x, n, cols, W, r0, r1, y, y_stride);
    case DType::kBF16:
      return MatvecT<DType::kBF16>(x, n, cols, W, r0, r1, y, y_stride);
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace adamas::cpu
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace adamas {
namespace cpu {
HWY_EXPORT(Matvec);
}  // namespace cpu

void matvec(const float* x, int n, int cols, const void* W, DType wtype, int row_begin, int row_end,
            float* y, size_t y_stride) {
  ADAMAS_CHECK(n >= 1 && n <= kMatvecMaxRows, "matvec: n must be in [1, {}], got {}",
               kMatvecMaxRows, n);
  ADAMAS_CHECK(cols >= 1, "matvec: cols must be ≥ 1, got {}", cols);
  ADAMAS_CHECK(row_begin >= 0 && row_begin <= row_end, "matvec: bad row range [{}, {})", row_begin,
               row_end);
  ADAMAS_CHECK(y_stride >= static_cast<size_t>(row_end), "matvec: y_stride {} < row_end {}",
               y_stride, row_end);
  ADAMAS_CHECK(x != nullptr && W != nullptr && y != nullptr, "matvec: null x, W or y");
  HWY_DYNAMIC_DISPATCH(cpu::Matvec)(x, n, cols, W, wtype, row_begin, row_end, y, y_stride);
}

}  // namespace adamas
#endif  // HWY_ONCE
