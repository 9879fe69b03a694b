// Element types of K/V storage and their scalar conversions.
// f16 and bf16 are stored as raw 16-bit patterns (same layout as CUDA's __half / __nv_bfloat16).
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace adamas {

enum class DType : uint8_t { kF32, kF16, kBF16 };

constexpr size_t dtype_size(DType t) { return t == DType::kF32 ? 4 : 2; }
std::string_view dtype_name(DType t);
// Accepts "f32"/"fp32"/"float32", "f16"/"fp16"/"float16", "bf16"/"bfloat16"; throws Error
// otherwise.
DType parse_dtype(std::string_view name);

struct f16 {
  uint16_t bits;
};
struct bf16 {
  uint16_t bits;
};

// IEEE binary16 <-> binary32, round to nearest even; NaN and Inf preserved.
float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);

inline float bf16_to_f32(uint16_t b) { return std::bit_cast<float>(uint32_t{b} << 16); }
inline uint16_t f32_to_bf16(float f) {
  uint32_t u = std::bit_cast<uint32_t>(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);  // NaN
  u += 0x7fffu + ((u >> 16) & 1u);  // round to nearest even
  return static_cast<uint16_t>(u >> 16);
}

inline float to_float(float x) { return x; }
inline float to_float(f16 x) { return f16_to_f32(x.bits); }
inline float to_float(bf16 x) { return bf16_to_f32(x.bits); }

// Converts n elements of type `src` to float.
void convert_to_f32(const void* src, DType src_type, float* dst, size_t n);
// Converts n floats to type `dst_type` (rounding to nearest even).
void convert_from_f32(const float* src, void* dst, DType dst_type, size_t n);

}  // namespace adamas
