// Fast Walsh–Hadamard transform, Highway SIMD with run-time dispatch.
// Butterfly stages with a half-width of at least one vector are whole-vector add/sub; the few
// narrower stages run on scalars (they are a small share of the work at d ≥ 64).
#include <cmath>

#include "adamas/core/hadamard.h"
#include "common/check.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "cpu/hadamard_simd.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace adamas::cpu {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

void HadamardRows(float* HWY_RESTRICT data, size_t rows, int d, size_t row_stride) {
  const hn::ScalableTag<float> df;
  const size_t lanes = hn::Lanes(df);
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  const auto vscale = hn::Set(df, scale);
  for (size_t r = 0; r < rows; ++r) {
    float* HWY_RESTRICT x = data + r * row_stride;
    size_t h = 1;
    for (; h < static_cast<size_t>(d) && h < lanes; h *= 2) {
      for (size_t i = 0; i < static_cast<size_t>(d); i += 2 * h) {
        for (size_t j = i; j < i + h; ++j) {
          const float a = x[j], b = x[j + h];
          x[j] = a + b;
          x[j + h] = a - b;
        }
      }
    }
    for (; h < static_cast<size_t>(d); h *= 2) {
      for (size_t i = 0; i < static_cast<size_t>(d); i += 2 * h) {
        for (size_t j = i; j < i + h; j += lanes) {
          const auto a = hn::LoadU(df, x + j);
          const auto b = hn::LoadU(df, x + j + h);
          hn::StoreU(hn::Add(a, b), df, x + j);
          hn::StoreU(hn::Sub(a, b), df, x + j + h);
        }
      }
    }
    size_t j = 0;
    for (; j + lanes <= static_cast<size_t>(d); j += lanes) {
      hn::StoreU(hn::Mul(hn::LoadU(df, x + j), vscale), df, x + j);
    }
    for (; j < static_cast<size_t>(d); ++j) x[j] *= scale;
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace adamas::cpu
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace adamas {
namespace cpu {
HWY_EXPORT(HadamardRows);
}  // namespace cpu

void hadamard_transform(float* data, size_t rows, int d, size_t row_stride) {
  check_head_dim(d);
  ADAMAS_CHECK(row_stride >= static_cast<size_t>(d), "row_stride {} is smaller than d {}",
               row_stride, d);
  HWY_DYNAMIC_DISPATCH(cpu::HadamardRows)(data, rows, d, row_stride);
}

}  // namespace adamas
#endif  // HWY_ONCE
