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

// kL1, kL2: between the query's code and the key's code (the paper: L1).
// kIP (ours): asymmetric. The transformed query, kept at 5 bits per element, against the key's
// code levels (one representative value per bucket and head): the estimate is the inner product
// of the query with the key as its code reconstructs it, so the query loses no precision to its
// own 2-bit code. Same key bytes as L1 and L2.
enum class Distance : uint8_t { kL1, kL2, kIP };

// kIP query precision: each transformed query element is rounded to an integer in
// [−kIpQueryMax, kIpQueryMax] (scale: the largest |element|), i.e. 5-bit planes.
inline constexpr int kIpQueryMax = 15;
inline constexpr int kIpQueryPlanes = 5;

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

// Code levels (kIP): the value that stands for each of the 2^bits buckets, ascending.
// default_levels: data-free, from the thresholds alone: interior buckets their midpoint, the two
//   outer ones half a neighbouring step beyond their threshold (1 bit: t ± 1). For {−10, 0, 10}
//   this gives {−15, −5, 5, 15}.
// bucket_centroids: the mean of the `values` in each bucket (the least-squares levels); a bucket
//   with no value keeps its default level. Non-finite values are ignored.
std::vector<float> default_levels(std::span<const float> thresholds);
std::vector<float> bucket_centroids(std::span<const float> values,
                                    std::span<const float> thresholds);
// Throws adamas::Error unless `levels` has 2^bits finite, non-decreasing values.
void check_levels(std::span<const float> levels, int bits);

constexpr int code_slot_stride(int page_size) {
  return (page_size + kCodeSlotAlign - 1) / kCodeSlotAlign * kCodeSlotAlign;
}
inline size_t code_page_words(const CodeSpec& s, int page_size) {
  return static_cast<size_t>(s.bits) * s.words() * code_slot_stride(page_size);
}

// A query's code. Fixed size, trivially copyable (passes to GPU kernels as is).
// L1/L2 (qplanes = 0): thermometer planes, plane-major: planes[m * words + w], m = 0 .. 2^bits − 2
//   (plane m holds bucket ≥ m + 1).
// kIP (qplanes = kIpQueryPlanes): planes[j * words + w] holds bit j of u_i = q̃_i + kIpQueryMax,
//   where q̃_i ∈ [−kIpQueryMax, kIpQueryMax] is the rounded transformed query element; steps[m−1]
//   is the integer level step Δ̃_m between buckets m − 1 and m, and `offset` = kIpQueryMax ·
//   head_dim · Σ Δ̃ bounds |score|, so that distance = offset − score is in [0, 2 · offset].
struct QueryCode {
  int bits = 0;
  int words = 0;
  std::array<uint64_t, kMaxThermoPlanes * kMaxCodeWords> planes{};
  int qplanes = 0;  // kIP fields after the planes: the L1/L2 GPU kernels' loads stay as they were
  int offset = 0;
  std::array<int32_t, kMaxThermoPlanes> steps{};
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

// Encodes one query for kIP against keys whose buckets stand for `levels` (2^bits ascending).
// The level steps are rounded to integers on a grid of span / W units (a positive step to at
// least 1), W ≤ 15 chosen as large as lets `heads_summed` distances add up within 16 bits:
// 2 · offset · heads_summed ≤ 65535.
// Throws adamas::Error when not even W = 1 fits (very wide heads summed over many query heads).
//   score(t) = Σ_i q̃_i · Σ_{m ≤ b_k(t,i)} Δ̃_m,   distance(t) = offset − score(t)
QueryCode encode_query_ip(const CodeSpec& spec, std::span<const float> levels, const float* q,
                          int heads_summed = 1);

// Encodes n keys of type `dtype` (row i at keys + i * key_stride elements) into the slots
// [slot0, slot0 + n) of one code page (layout above). Requires slot0 + n ≤ slot_stride.
void encode_keys(const CodeSpec& spec, std::span<const float> thresholds, const void* keys,
                 DType dtype, size_t n, size_t key_stride, uint64_t* code_page, int slot_stride,
                 int slot0);

// Decodes the buckets of the key in `slot` of a code page (tests and debugging).
void unpack_key_buckets(const CodeSpec& spec, const uint64_t* code_page, int slot_stride, int slot,
                        uint8_t* buckets);

}  // namespace adamas
