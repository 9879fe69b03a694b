// The layers of a Llama-family forward pass on the CPU, on fp32 activations (row-major, one row
// per token). Each is tested against a naive reference in tests/model/ops_test.cc.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "adamas/cache/paged_kv_cache.h"
#include "adamas/model/config.h"
#include "adamas/model/weights.h"

namespace adamas::model {

// y[n][W.rows] = x[n][W.cols] · Wᵀ (+ bias[W.rows] when not null), blocks of output rows spread
// over `threads` OpenMP threads (≤ 0: all). Up to kMatvecMaxRows rows of x (decode steps): the
// SIMD matvec (core/matvec.h), which reads each weight once in its own dtype. More (prefill): BLAS
// sgemm, f16/bf16 weights converted to fp32 one block at a time (no fp32 copy of the model).
void linear(const float* x, int n, const Matrix& W, const float* bias, float* y, int threads = 0);

// One product of linear_group: y = x · Wᵀ (+ bias).
struct Product {
  const Matrix* W;
  const float* bias;  // may be null
  float* y;
};
// linear() for several matrices of the same x (q, k, v; gate, up). For a decode step (n ≤
// kMatvecMaxRows) the matrices are one row space split over the threads in contiguous, equal
// byte ranges: one parallel region and one long weight stream per thread instead of one region
// per matrix (what small models' decode steps were waiting on). Every W has x's width.
void linear_group(const float* x, int n, std::span<const Product> products, int threads = 0);

// y = x / sqrt(mean(x²) + eps) · weight, per row of `dim` (y may alias x).
void rms_norm(const float* x, const float* weight, int n, int dim, float eps, float* y);

// Inverse frequencies of the rotary embedding [head_dim / 2], fp32 as HF computes them, with
// linear or llama3 scaling applied.
std::vector<float> rope_inv_freq(const RopeConfig& rope, int head_dim);

// Rotates x[n][heads][head_dim] in place, token i at positions[i]. HF's rotate_half layout:
// element j pairs with j + head_dim/2, angle = position · inv_freq[j mod head_dim/2].
void apply_rope(float* x, int n, int heads, int head_dim, const int32_t* positions,
                const float* inv_freq);

// gate[i] = silu(gate[i]) · up[i].
void swiglu(float* gate, const float* up, size_t n);

// out[i] = row tokens[i] of the embedding matrix, as fp32. Token ids are checked.
void embed_tokens(const Matrix& table, const int32_t* tokens, int n, float* out);

// Causal attention of n new tokens of a sequence whose keys and values (post-RoPE, these n
// included, at positions length − n … length − 1) are in `cache` at `layer`:
//   out[i][h] = softmax(q[i][h] · K[0 .. p_i]ᵀ / sqrt(d)) · V[0 .. p_i].
// q and out are [n][num_heads][head_dim]. Flash-style: query blocks × key blocks with an online
// softmax, so memory is O(block²) per thread, never O(n · length); keys are read from the cache in
// its dtype, as decode reads them.
void prefill_attention(const PagedKVCache& cache, int layer, SeqId seq, const float* q, int n,
                       int num_heads, float* out, int threads = 0);

// f16/bf16/f32 → fp32 fast enough for the hot loops above (table for f16).
void to_f32(const void* src, DType type, float* dst, size_t n);

}  // namespace adamas::model
