// Kernel contract: decode attention (docs/method.md step 6).
//
// For the nq query heads that share one KV head (GQA; nq = 1 for MHA), with q[h] the fp32,
// post-RoPE query of head h (q + h * head_dim):
//   dense:   out[h] = softmax(scale · q[h] · K^T) · V                 over all positions
//   sparse:  out[h] = softmax(scale · q[h] · K_S^T) · V_S             over S = indices[0 .. count)
// K and V are read from the paged cache in their stored dtype; products, softmax and sums are
// fp32 with a max-subtracted (stable) softmax. out has nq × head_dim floats.
// Sparse with S = every position once equals dense up to fp32 summation order.
// Errors (adamas::Error): length ≤ 0, an index outside [0, length), count ≤ 0.
#pragma once

#include <cstdint>

#include "adamas/core/paged_view.h"

namespace adamas {

void dense_decode_attention(const float* q, int nq, const PagedKV& kv, float scale, float* out);

void sparse_decode_attention(const float* q, int nq, const PagedKV& kv, const int32_t* indices,
                             int count, float scale, float* out);

// Exact scores s[h * out_stride + t] = q[h] · k_t for every position (the oracle's estimate).
void key_scores(const float* q, int nq, const PagedKV& kv, float* out, size_t out_stride);

namespace ref {
void dense_decode_attention(const float* q, int nq, const PagedKV& kv, float scale, float* out);
void sparse_decode_attention(const float* q, int nq, const PagedKV& kv, const int32_t* indices,
                             int count, float scale, float* out);
void key_scores(const float* q, int nq, const PagedKV& kv, float* out, size_t out_stride);
}  // namespace ref

}  // namespace adamas
