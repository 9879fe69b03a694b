// f32/f16/bf16 elements to an fp32 vector, in registers: shared by the SIMD kernels that read
// half-precision rows (attention over the cache, the matvec of the model's weights).
// Per-target include guard: included once per Highway target by foreach_target.
#if defined(ADAMAS_CPU_LOAD_ROW_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef ADAMAS_CPU_LOAD_ROW_INL_H_
#undef ADAMAS_CPU_LOAD_ROW_INL_H_
#else
#define ADAMAS_CPU_LOAD_ROW_INL_H_
#endif

#include <cstddef>
#include <cstdint>

#include "adamas/common/dtype.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace adamas::cpu {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Lanes(df) elements of a row of type T starting at element j, as fp32.
template <DType T, class DF>
HWY_INLINE hn::Vec<DF> LoadRow(DF df, const std::byte* HWY_RESTRICT row, size_t j) {
  if constexpr (T == DType::kF32) {
    return hn::LoadU(df, reinterpret_cast<const float*>(row) + j);
  } else if constexpr (T == DType::kF16) {
#if HWY_TARGET == HWY_SCALAR || HWY_TARGET == HWY_EMU128
    // Highway 1.0.3's emulated PromoteTo (these targets, on compilers without native f16: GCC 13,
    // clang 14) reads f16 Inf/NaN as finite numbers (Inf as 2^16·1.x): our exact conversion.
    float lanes[4];  // EMU128: 16 bytes of f32 at most; SCALAR: 1
    const uint16_t* h = reinterpret_cast<const uint16_t*>(row) + j;
    for (size_t i = 0; i < hn::Lanes(df); ++i) lanes[i] = f16_to_f32(h[i]);
    return hn::LoadU(df, lanes);
#else
    const hn::Rebind<hwy::float16_t, DF> dh;
    return hn::PromoteTo(df, hn::LoadU(dh, reinterpret_cast<const hwy::float16_t*>(row) + j));
#endif
  } else {
    const hn::Rebind<uint16_t, DF> d16;
    const hn::Rebind<uint32_t, DF> d32;
    const auto wide =
        hn::PromoteTo(d32, hn::LoadU(d16, reinterpret_cast<const uint16_t*>(row) + j));
    return hn::BitCast(df, hn::ShiftLeft<16>(wide));
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace adamas::cpu
HWY_AFTER_NAMESPACE();

#endif  // per-target include guard
