// The GPU kernels of the Llama-family forward pass (src/cuda/model), beside the decode kernels of
// kernels.h. Each mirrors a CPU op of model/ops.h, which is its reference in the tests
// (tests/cuda/model_kernels_test.cc). Rows are tokens; activations between layers are fp32; the
// inputs of matrix products are in the weights' dtype `act` (bf16, f16, or f32 for an f32 model),
// rounded once, as Hugging Face's bf16 models round them. Pointers are device memory; launches are
// asynchronous on `stream`; bad arguments throw adamas::Error before anything is launched.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "adamas/common/dtype.h"
#include "adamas/cuda/device_layer.h"

namespace adamas::cuda {

// x[i][:] = table[tokens[i]][:] as fp32; table [vocab][hidden] of `type`. Token ids outside
// [0, vocab) write NaN rows (the host checks ids before a step; this keeps the kernel total).
void embed_rows(const void* table, DType type, int vocab, int hidden, const int32_t* tokens, int n,
                float* x, cudaStream_t stream);

// out[i] = x[i] / sqrt(mean(x[i]²) + eps) · weight, rows of `dim`, written as `out_type`.
// fp32 arithmetic like HF (variance in fp32). One block per row.
void rms_norm_rows(const float* x, const float* weight, int n, int dim, float eps, void* out,
                   DType out_type, cudaStream_t stream);

// The attention inputs of n tokens from one fused projection row qkv[i] = [q | k | v]
// ([n][(H + 2·Hkv)·d] fp32): adds bias (null: none, else [(H + 2·Hkv)·d]), rotates q and k by
// RoPE at positions[i] (HF's rotate_half layout, fp32 angle inv_freq[j]·position as model/ops.h),
// and writes q [n][H][d], k and v [n][Hkv][d] fp32.
struct RopeArgs {
  const float* qkv = nullptr;
  const float* bias = nullptr;
  const int32_t* positions = nullptr;  // device [n]
  const float* inv_freq = nullptr;     // device [d / 2]
  int n = 0, num_heads = 0, num_kv_heads = 0, head_dim = 0;
  float* q = nullptr;
  float* k = nullptr;
  float* v = nullptr;
};
void qkv_rope(const RopeArgs& args, cudaStream_t stream);

// out[i][j] = silu(gu[i][j] + bg[j]) · (gu[i][I + j] + bu[j]) as `out_type`, gu [n][2·I] fp32
// (gate then up: one fused projection); bias [2·I] or null.
void swiglu_rows(const float* gate_up, const float* bias, int n, int inter, void* out,
                 DType out_type, cudaStream_t stream);

// out[i] = (x[i] (+ bias)) as `out_type`: count = rows · dim elements, bias [dim] or null.
void convert_rows(const float* x, const float* bias, int64_t count, int dim, void* out,
                  DType out_type, cudaStream_t stream);
// dst[e] = src[e] converted from `from` to `to` (weights uploaded in another dtype).
void cast_elements(const void* src, DType from, int64_t count, void* dst, DType to,
                   cudaStream_t stream);
// x[i][j] += bias[j], count = rows · dim.
void add_bias_rows(float* x, const float* bias, int64_t count, int dim, cudaStream_t stream);

// ---- prefill attention ---------------------------------------------------------------------
// Causal attention of n new tokens of each sequence of a batch whose keys and values, these n
// included, are in the paged cache of `layer` (the chunk already appended):
//   out[i][h] = softmax(scale · q[i][h] · K[0 .. p_i]ᵀ) · V[0 .. p_i],  p_i = length − n + i,
// GQA head h reading KV head h / (H / Hkv). q and out [n][H][d] fp32 (one sequence: batch.batch
// must be 1; batch.lengths[0] = length ≥ n). Flash attention on tensor cores (mma.sync
// m16n8k16, f16/bf16 operands as the cache stores them, q rounded to that type, fp32
// accumulation and online softmax): 64 query rows per block, 64-key tiles from the paged cache.
// head_dim ∈ {64, 128, 256}; other sizes (16, 32) use the same kernel with one warp's tile.
void prefill_attention(const DeviceLayer& layer, const DeviceBatch& batch, const float* q, int n,
                       int num_heads, float scale, float* out, cudaStream_t stream);

}  // namespace adamas::cuda
