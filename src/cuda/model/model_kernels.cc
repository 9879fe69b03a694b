// Public entry points of the forward-pass kernels: argument checks that name the problem, then
// the launch (model_launch.h) and a check of the launch.
#include "adamas/cuda/model_kernels.h"

#include "adamas/cuda/runtime.h"
#include "common/check.h"
#include "cuda/model/model_launch.h"

namespace adamas::cuda {

void embed_rows(const void* table, DType type, int vocab, int hidden, const int32_t* tokens, int n,
                float* x, cudaStream_t stream) {
  ADAMAS_CHECK(table && tokens && x, "embed_rows: null table, tokens or output");
  ADAMAS_CHECK(n >= 0 && hidden >= 1 && vocab >= 1,
               "embed_rows: bad shape (n {}, hidden {}, vocab {})", n, hidden, vocab);
  if (n == 0) return;
  detail::launch_embed(table, type, vocab, hidden, tokens, n, x, stream);
  check_launch("embed_rows");
}

void rms_norm_rows(const float* x, const float* weight, int n, int dim, float eps, void* out,
                   DType out_type, cudaStream_t stream) {
  ADAMAS_CHECK(x && weight && out, "rms_norm_rows: null input, weight or output");
  ADAMAS_CHECK(n >= 0 && dim >= 1, "rms_norm_rows: bad shape (n {}, dim {})", n, dim);
  if (n == 0) return;
  detail::launch_rms_norm(x, weight, n, dim, eps, out, out_type, stream);
  check_launch("rms_norm_rows");
}

void qkv_rope(const RopeArgs& a, cudaStream_t stream) {
  ADAMAS_CHECK(a.qkv && a.positions && a.inv_freq && a.q && a.k && a.v,
               "qkv_rope: null pointer argument");
  ADAMAS_CHECK(
      a.n >= 0 && a.num_heads >= 1 && a.num_kv_heads >= 1 && a.head_dim >= 2 && a.head_dim % 2 == 0,
      "qkv_rope: bad shape (n {}, heads {}/{}, head_dim {})", a.n, a.num_heads, a.num_kv_heads,
      a.head_dim);
  if (a.n == 0) return;
  detail::launch_qkv_rope(a, stream);
  check_launch("qkv_rope");
}

void swiglu_rows(const float* gate_up, const float* bias, int n, int inter, void* out,
                 DType out_type, cudaStream_t stream) {
  ADAMAS_CHECK(gate_up && out, "swiglu_rows: null input or output");
  ADAMAS_CHECK(n >= 0 && inter >= 1, "swiglu_rows: bad shape (n {}, intermediate {})", n, inter);
  if (n == 0) return;
  detail::launch_swiglu(gate_up, bias, n, inter, out, out_type, stream);
  check_launch("swiglu_rows");
}

void convert_rows(const float* x, const float* bias, int64_t count, int dim, void* out,
                  DType out_type, cudaStream_t stream) {
  ADAMAS_CHECK(x && out, "convert_rows: null input or output");
  ADAMAS_CHECK(count >= 0 && dim >= 1, "convert_rows: bad shape (count {}, dim {})", count, dim);
  if (count == 0) return;
  detail::launch_convert(x, bias, count, dim, out, out_type, stream);
  check_launch("convert_rows");
}

void cast_elements(const void* src, DType from, int64_t count, void* dst, DType to,
                   cudaStream_t stream) {
  ADAMAS_CHECK(src && dst, "cast_elements: null source or destination");
  ADAMAS_CHECK(count >= 0, "cast_elements: count must be ≥ 0, got {}", count);
  if (count == 0) return;
  detail::launch_cast(src, from, count, dst, to, stream);
  check_launch("cast_elements");
}

void add_bias_rows(float* x, const float* bias, int64_t count, int dim, cudaStream_t stream) {
  ADAMAS_CHECK(x && bias, "add_bias_rows: null input or bias");
  ADAMAS_CHECK(count >= 0 && dim >= 1, "add_bias_rows: bad shape (count {}, dim {})", count, dim);
  if (count == 0) return;
  detail::launch_add_bias(x, bias, count, dim, stream);
  check_launch("add_bias_rows");
}

void prefill_attention(const DeviceLayer& layer, const DeviceBatch& batch, const float* q, int n,
                       int num_heads, float scale, float* out, cudaStream_t stream) {
  layer.validate();
  batch.validate();
  ADAMAS_CHECK(batch.batch == 1, "prefill_attention: one sequence at a time, got a batch of {}",
               batch.batch);
  ADAMAS_CHECK(q && out, "prefill_attention: null q or out");
  ADAMAS_CHECK(num_heads >= 1 && num_heads % layer.num_kv_heads == 0,
               "num_q_heads ({}) must be a positive multiple of num_kv_heads ({})", num_heads,
               layer.num_kv_heads);
  ADAMAS_CHECK(n >= 1 && n <= batch.max_length,
               "prefill_attention: {} new tokens but the sequence holds at most {}", n,
               batch.max_length);
  ADAMAS_CHECK(scale > 0, "prefill_attention: scale must be > 0, got {}", scale);
  detail::launch_prefill_attention(layer, batch, q, n, num_heads, scale, out, stream);
  check_launch("prefill_attention");
}

}  // namespace adamas::cuda
