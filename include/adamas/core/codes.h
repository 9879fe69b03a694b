// Kernel contract: bucketize + pack (docs/method.md steps 2–3).
//
// Each element x of the (optionally Hadamard-transformed) vector gets the bucket
//   b(x) = #{ thresholds t : x > t }  in 0 .. 2^bits − 1.
//
// Key codes are stored as `bits` binary bit-planes (plane p holds bit p of every bucket), so a
// key costs bits × d bits (2 × 128 bits = 32 bytes: 1/8 of an fp16 key). Query codes are expanded
// once per step into the 2^bits − 1 thermometer planes t_m = (bucket ≥ m), which makes the exact
// L1 distance  Σ_i |b_q(i) − b_k(i)| = Σ_m popcount(t_m(q) XOR t_m(k)).  The key's thermometer
// planes are derived from its binary planes with a few AND/OR (estimate.h).
//
// Code page layout (one page of the paged cache, one KV head):
//   uint64_t page[bits][words][slot_stride]   words = ceil(d / 64), slot_stride = round_up(P, 8)
// i.e. word w of plane p of the key in slot s is page[(p * words + w) * slot_stride + s]: eight
// consecutive slots share one 512-bit load. Dimensions i ≥ d in the last word are zero.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "adamas/common/dtype.h"

namespace adamas {

inline constexpr int kMaxCodeBits = 3;
inline constexpr int kMaxThermoPlanes = (1 << kMaxCodeBits) - 1;  // 7
inline constexpr int kMaxCodeWords = 256 / 64;                    // d ≤ 256
inline constexpr int kCodeSlotAlign = 8;                          // slots per 512-bit load

enum class Distance : uint8_t { kL1, kL2 };

// The paper's defaults: 1 bit {0}; 2 bits {-10, 0, 10}; 3 bits (our choice, same outer range,
// uniform steps) {-15, -10, -5, 0, 5, 10, 15}. On the orthonormal transform.
std::vector<float> default_thresholds(int bits);

struct CodeSpec {
  int head_dim = 128;
  int bits = 2;                   // 1, 2 or 3
  bool hadamard = true;           // false: the "w/o Hadamard" ablation
  std::vector<float> thresholds;  // 2^bits − 1 strictly ascending values; empty = defaults

  int words() const { return (head_dim + 63) / 64; }
  int thermo_planes() const { return (1 << bits) - 1; }
  size_t key_code_bytes() const { return static_cast<size_t>(bits) * words() * 8; }
  // Throws adamas::Error naming the bad field (head_dim, bits, thresholds count or order).
  void validate() const;
  // Thresholds in effect (the explicit ones, or the defaults for `bits`).
  std::vector<float> effective_thresholds() const;
};

// Calibrated thresholds (our addition): the 2^bits − 1 equal-mass quantiles of `values` (samples
// of transformed key elements of one head), so that each bucket holds the same share.
std::vector<float> calibrate_thresholds(std::span<const float> values, int bits);

constexpr int code_slot_stride(int page_size) {
  return (page_size + kCodeSlotAlign - 1) / kCodeSlotAlign * kCodeSlotAlign;
}
inline size_t code_page_words(const CodeSpec& s, int page_size) {
  return static_cast<size_t>(s.bits) * s.words() * code_slot_stride(page_size);
}

// A query's code: thermometer planes, plane-major: planes[m * words + w], m = 0 .. 2^bits − 2
// (plane m holds bucket ≥ m + 1). Fixed size, trivially copyable (passes to GPU kernels as is).
struct QueryCode {
  int bits = 0;
  int words = 0;
  std::array<uint64_t, kMaxThermoPlanes * kMaxCodeWords> planes{};
};

// Bucket of one value. thresholds ascending, count = 2^bits − 1.
inline uint8_t bucket_of(float x, std::span<const float> thresholds) {
  uint8_t b = 0;
  for (float t : thresholds) b += x > t;
  return b;
}

// Buckets of one vector: transform (if spec.hadamard) then bucketize. `x` has head_dim floats.
// thresholds: the 2^bits − 1 values in effect (spec.effective_thresholds() or per-head ones).
void compute_buckets(const CodeSpec& spec, std::span<const float> thresholds, const float* x,
                     uint8_t* buckets);

// Encodes one query (raw, post-RoPE, pre-Hadamard).
QueryCode encode_query(const CodeSpec& spec, std::span<const float> thresholds, const float* q);

// Encodes n keys of type `dtype` (row i at keys + i * key_stride elements) into the slots
// [slot0, slot0 + n) of one code page (layout above). Requires slot0 + n ≤ slot_stride.
void encode_keys(const CodeSpec& spec, std::span<const float> thresholds, const void* keys,
                 DType dtype, size_t n, size_t key_stride, uint64_t* code_page, int slot_stride,
                 int slot0);

// Decodes the buckets of the key in `slot` of a code page (tests and debugging).
void unpack_key_buckets(const CodeSpec& spec, const uint64_t* code_page, int slot_stride, int slot,
                        uint8_t* buckets);

}  // namespace adamas
