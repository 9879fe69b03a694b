// Fast Walsh–Hadamard transform, Highway SIMD with run-time dispatch.
// Butterfly stages narrower than a vector use lane shuffles; wider ones are whole-vector add/sub.
// Requires d ≥ lanes (d ≥ 16 and at most 16 float lanes on the targets compiled).
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

#if HWY_TARGET != HWY_SCALAR
// Butterfly partner of every lane for half-width h < lanes: lane i ↔ lane i XOR h.
template <size_t kH, class D, class V>
HWY_INLINE V Partner(D d, V v) {
  if constexpr (kH == 1) {
    return hn::Shuffle2301(v);
  } else if constexpr (kH == 2) {
    return hn::Shuffle1032(v);
  } else if constexpr (kH == 4) {
    return hn::SwapAdjacentBlocks(v);  // 128-bit blocks
  } else {
    return hn::ConcatLowerUpper(d, v, v);  // 256-bit halves
  }
}
#endif

// Stage of half-width kH inside each vector: (a, b) → (a + b, a − b) for lanes i, i + kH.
template <size_t kH, class D, class V>
HWY_INLINE V InVectorStage(D d, V v) {
#if HWY_TARGET != HWY_SCALAR
  if constexpr (kH < hn::MaxLanes(D())) {
    HWY_ALIGN float sign[hn::MaxLanes(D())];
    for (size_t i = 0; i < hn::MaxLanes(D()); ++i) sign[i] = (i & kH) ? -1.0f : 1.0f;
    return hn::MulAdd(v, hn::Load(d, sign), Partner<kH>(d, v));
  }
#endif
  return v;
}

void HadamardRows(float* HWY_RESTRICT data, size_t rows, int d, size_t row_stride) {
  const hn::ScalableTag<float> df;
  const size_t lanes = hn::Lanes(df), n = static_cast<size_t>(d);
  const auto vscale = hn::Set(df, 1.0f / std::sqrt(static_cast<float>(d)));
  for (size_t r = 0; r < rows; ++r) {
    float* HWY_RESTRICT x = data + r * row_stride;
    // Half-widths 1 .. lanes/2: within each vector, by lane shuffles.
    for (size_t j = 0; j < n; j += lanes) {
      auto v = hn::LoadU(df, x + j);
      v = InVectorStage<1>(df, v);
      v = InVectorStage<2>(df, v);
      v = InVectorStage<4>(df, v);
      v = InVectorStage<8>(df, v);
      hn::StoreU(v, df, x + j);
    }
    // Half-widths lanes .. d/2: between whole vectors.
    for (size_t h = lanes; h < n; h *= 2) {
      for (size_t i = 0; i < n; i += 2 * h) {
        for (size_t j = i; j < i + h; j += lanes) {
          const auto a = hn::LoadU(df, x + j);
          const auto b = hn::LoadU(df, x + j + h);
          hn::StoreU(hn::Add(a, b), df, x + j);
          hn::StoreU(hn::Sub(a, b), df, x + j + h);
        }
      }
    }
    for (size_t j = 0; j < n; j += lanes) {
      hn::StoreU(hn::Mul(hn::LoadU(df, x + j), vscale), df, x + j);
    }
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
