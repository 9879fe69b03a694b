// Kernel contract: distance estimation (docs/method.md step 4).
//
// For the query codes of the nq query heads that share one KV head (nq = 1 for MHA) and the key
// codes of one sequence's KV head, computes for every position t < codes.length:
//   L1:  d(t) = Σ_i |b_q(i) − b_k(t, i)|         (exact, from popcounts of thermometer planes)
//   L2:  d(t) = Σ_i (b_q(i) − b_k(t, i))²        (exact, squared; same ranking as L2)
// Output:
//   sum_heads = false:  out[h * out_stride + t] for h < nq   (one row per query head)
//   sum_heads = true:   out[t] = Σ_h d_h(t)                   (one shared row per KV head)
// Smaller = more relevant. All query codes must have the spec's bits and words. Throws
// adamas::Error when the largest possible distance does not fit uint16 (max_distance()).
//
// kIP: d(t) = offset − Σ_i q̃_i · Σ_{m ≤ b_k(t,i)} Δ̃_m  (codes.h encode_query_ip); summed over
// the heads when sum_heads. The query codes must come from encode_query_ip.
//
// Fused histogram (optional, for top-k): when `histogram` is not null, it must hold
// rows × histogram_size(...) zeroed counters; histogram[r * histogram_size + (v >> shift)] is
// incremented for every position whose distance in output row r is v, with shift =
// histogram_shift(distance): 0 for L1/L2 (a counter per value), kIpHistogramShift for kIP (whose
// values span 16 bits). select_smallest() then needs no counting pass of its own.
#pragma once

#include <cstdint>

#include "adamas/core/codes.h"
#include "adamas/core/paged_view.h"

namespace adamas {

// Largest value a distance can take for one query head: (2^bits − 1)^p × head_dim, p = 1 (L1)
// or 2 (L2).
int max_distance(const CodeSpec& spec, Distance distance);

// Counters per histogram row: (the largest distance of one output row >> shift) + 1.
int histogram_size(const CodeSpec& spec, Distance distance, int nq, bool sum_heads);
inline constexpr int kIpHistogramShift = 4;  // 4096 counters cover 16-bit kIP distances
constexpr int histogram_shift(Distance distance) {
  return distance == Distance::kIP ? kIpHistogramShift : 0;
}

void estimate_distances(const CodeSpec& spec, Distance distance, const QueryCode* q, int nq,
                        const PagedCodes& codes, bool sum_heads, uint16_t* out, size_t out_stride,
                        uint32_t* histogram = nullptr);

namespace ref {
// Reference: unpacks every key's buckets and sums |Δ| or Δ² directly.
void estimate_distances(const CodeSpec& spec, Distance distance, const QueryCode* q, int nq,
                        const PagedCodes& codes, bool sum_heads, uint16_t* out, size_t out_stride);
}  // namespace ref

}  // namespace adamas
