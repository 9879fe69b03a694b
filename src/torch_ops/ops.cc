// The PyTorch operators (torch.ops.adamas.*): schemas, and the CPU implementations over
// decode/paged_decode.h. The CUDA implementations are in ops_cuda.cc; the fake (meta) ones, for
// torch.compile, in python/adamas/ops.py. Layout and checks: tensors.h.
#include <torch/library.h>

#include <algorithm>

#include "common/check.h"
#include "torch_ops/tensors.h"

namespace adamas::torch_ops {
namespace {

// append_kv after check_cache: the tokens' checks, then the write.
void append_checked(const Layout& l, const at::Tensor& k_cache, const at::Tensor& v_cache,
                    const at::Tensor& codes, const at::Tensor& thresholds, const at::Tensor& k,
                    const at::Tensor& v, const at::Tensor& slots, bool hadamard) {
  check_new_tokens(l, k, v, slots, k_cache.device());
  const at::Tensor kc = k.contiguous(), vc = v.contiguous(), sc = slots.contiguous();
  paged_append(paged_layer(l, k_cache, v_cache, codes, thresholds, hadamard),
               sc.data_ptr<int32_t>(), static_cast<int>(k.size(0)), kc.data_ptr(), vc.data_ptr(),
               dtype_of(k, "k"));
}

// decode after check_cache and the policy.
at::Tensor decode_checked(const Layout& l, const PolicyConfig& p, const at::Tensor& q,
                          const at::Tensor& k_cache, const at::Tensor& v_cache,
                          const at::Tensor& codes, const at::Tensor& thresholds,
                          const at::Tensor& page_indptr, const at::Tensor& page_indices,
                          const at::Tensor& lengths, int64_t max_length, double scale) {
  const AttentionCall c =
      prepare_attention(q, l, page_indptr, page_indices, lengths, max_length, k_cache.device());
  at::Tensor out = c.new_output();
  paged_decode(paged_layer(l, k_cache, v_cache, codes, thresholds, p.hadamard), c.batch,
               c.q.data_ptr<float>(), c.num_q_heads(), p, static_cast<float>(scale),
               out.data_ptr<float>());
  return out.to(q.scalar_type());
}

void append_kv_cpu(at::Tensor k_cache, at::Tensor v_cache, at::Tensor codes,
                   const at::Tensor& thresholds, const at::Tensor& k, const at::Tensor& v,
                   const at::Tensor& slots, bool hadamard) {
  const Layout l = check_cache(k_cache, v_cache, codes, thresholds);
  append_checked(l, k_cache, v_cache, codes, thresholds, k, v, slots, hadamard);
}

int64_t workspace_bytes_cpu(const at::Tensor& k_cache, const at::Tensor& codes,
                            const at::Tensor& thresholds, int64_t num_q_heads, int64_t max_batch,
                            int64_t max_length, const std::string& policy) {
  const Layout l = check_cache(k_cache, k_cache, codes, thresholds);
  parse_checked_policy(policy, l);
  return 0;  // the CPU ops keep their scratch per thread
}

std::tuple<at::Tensor, at::Tensor> select_cpu(const at::Tensor& q, const at::Tensor& k_cache,
                                              const at::Tensor& codes, const at::Tensor& thresholds,
                                              const at::Tensor& page_indptr,
                                              const at::Tensor& page_indices,
                                              const at::Tensor& lengths, int64_t max_length,
                                              const std::string& policy, at::Tensor workspace) {
  const Layout l = check_cache(k_cache, k_cache, codes, thresholds);
  const PolicyConfig p = parse_checked_policy(policy, l);
  ADAMAS_CHECK(p.kind == PolicyKind::kAdamas, "select: policy {} selects nothing (adamas does)",
               p.describe());
  const AttentionCall c =
      prepare_attention(q, l, page_indptr, page_indices, lengths, max_length, k_cache.device());
  const PagedLayer layer = paged_layer(l, k_cache, k_cache, codes, thresholds, p.hadamard);
  const int rows = selection_rows(layer, c.batch.batch, c.num_q_heads(), p);
  const int64_t stride = std::min<int64_t>(p.budget, max_length);
  at::Tensor indices = at::full({rows, stride}, -1, lengths.options());
  at::Tensor counts = at::zeros({rows}, lengths.options());
  paged_select(layer, c.batch, c.q.data_ptr<float>(), c.num_q_heads(), p,
               indices.data_ptr<int32_t>(), static_cast<size_t>(stride),
               counts.data_ptr<int32_t>());
  return {indices, counts};
}

at::Tensor sparse_attention_cpu(const at::Tensor& q, const at::Tensor& k_cache,
                                const at::Tensor& v_cache, const at::Tensor& page_indptr,
                                const at::Tensor& page_indices, const at::Tensor& lengths,
                                int64_t max_length, const at::Tensor& indices,
                                const at::Tensor& counts, bool shared, double scale,
                                at::Tensor workspace) {
  const Layout l = check_cache(k_cache, v_cache, at::Tensor(), at::Tensor());
  const AttentionCall c =
      prepare_attention(q, l, page_indptr, page_indices, lengths, max_length, k_cache.device());
  check_selection(indices, counts,
                  static_cast<int64_t>(c.batch.batch) * (shared ? l.num_kv_heads : c.num_q_heads()),
                  shared, k_cache.device());
  const at::Tensor ic = indices.contiguous(), cc = counts.contiguous();
  const int32_t* cp = cc.data_ptr<int32_t>();
  const int64_t k = indices.size(1);
  // Counts are checked here; the core kernels check each index against its sequence's length.
  for (int64_t r = 0; r < counts.size(0); ++r) {
    ADAMAS_CHECK(cp[r] >= 1 && cp[r] <= k, "counts[{}] = {} is outside [1, {}]", r, cp[r], k);
  }
  at::Tensor out = c.new_output();
  paged_sparse_attention(paged_layer(l, k_cache, v_cache, at::Tensor(), at::Tensor(), true),
                         c.batch, c.q.data_ptr<float>(), c.num_q_heads(), ic.data_ptr<int32_t>(),
                         static_cast<size_t>(k), cp, shared, static_cast<float>(scale),
                         out.data_ptr<float>());
  return out.to(q.scalar_type());
}

at::Tensor dense_attention_cpu(const at::Tensor& q, const at::Tensor& k_cache,
                               const at::Tensor& v_cache, const at::Tensor& page_indptr,
                               const at::Tensor& page_indices, const at::Tensor& lengths,
                               int64_t max_length, double scale, at::Tensor workspace) {
  const Layout l = check_cache(k_cache, v_cache, at::Tensor(), at::Tensor());
  const AttentionCall c =
      prepare_attention(q, l, page_indptr, page_indices, lengths, max_length, k_cache.device());
  at::Tensor out = c.new_output();
  paged_dense_attention(paged_layer(l, k_cache, v_cache, at::Tensor(), at::Tensor(), true), c.batch,
                        c.q.data_ptr<float>(), c.num_q_heads(), static_cast<float>(scale),
                        out.data_ptr<float>());
  return out.to(q.scalar_type());
}

at::Tensor decode_cpu(const at::Tensor& q, const at::Tensor& k_cache, const at::Tensor& v_cache,
                      const at::Tensor& codes, const at::Tensor& thresholds,
                      const at::Tensor& page_indptr, const at::Tensor& page_indices,
                      const at::Tensor& lengths, int64_t max_length, const std::string& policy,
                      double scale, at::Tensor workspace) {
  const Layout l = check_cache(k_cache, v_cache, codes, thresholds);
  return decode_checked(l, parse_checked_policy(policy, l), q, k_cache, v_cache, codes, thresholds,
                        page_indptr, page_indices, lengths, max_length, scale);
}

at::Tensor decode_step_cpu(const at::Tensor& q, const at::Tensor& k_new, const at::Tensor& v_new,
                           const at::Tensor& slots, at::Tensor k_cache, at::Tensor v_cache,
                           at::Tensor codes, const at::Tensor& thresholds,
                           const at::Tensor& page_indptr, const at::Tensor& page_indices,
                           const at::Tensor& lengths, int64_t max_length, const std::string& policy,
                           double scale, at::Tensor workspace) {
  const Layout l = check_cache(k_cache, v_cache, codes, thresholds);
  const PolicyConfig p = parse_checked_policy(policy, l);
  append_checked(l, k_cache, v_cache, codes, thresholds, k_new, v_new, slots, p.hadamard);
  return decode_checked(l, p, q, k_cache, v_cache, codes, thresholds, page_indptr, page_indices,
                        lengths, max_length, scale);
}

}  // namespace
}  // namespace adamas::torch_ops

// Tensor layout and semantics: src/torch_ops/tensors.h and decode/paged_decode.h. Every op
// runs on the device of its tensors (CPU or CUDA); `workspace` is a zeroed uint8 tensor of
// workspace_bytes() bytes on that device (the GPU's selection and attention scratch: no step
// allocates device memory beyond its outputs, so steps can be captured in CUDA graphs).
TORCH_LIBRARY(adamas, m) {
  m.def(
      "append_kv(Tensor(a!) k_cache, Tensor(b!) v_cache, Tensor(c!) codes, Tensor thresholds, "
      "Tensor k, Tensor v, Tensor slots, bool hadamard) -> ()");
  m.def(
      "workspace_bytes(Tensor k_cache, Tensor codes, Tensor thresholds, int num_q_heads, "
      "int max_batch, int max_length, str policy) -> int");
  m.def(
      "select(Tensor q, Tensor k_cache, Tensor codes, Tensor thresholds, Tensor page_indptr, "
      "Tensor page_indices, Tensor lengths, int max_length, str policy, Tensor(a!) workspace) "
      "-> (Tensor, Tensor)");
  m.def(
      "sparse_attention(Tensor q, Tensor k_cache, Tensor v_cache, Tensor page_indptr, "
      "Tensor page_indices, Tensor lengths, int max_length, Tensor indices, Tensor counts, "
      "bool shared, float scale, Tensor(a!) workspace) -> Tensor");
  m.def(
      "dense_attention(Tensor q, Tensor k_cache, Tensor v_cache, Tensor page_indptr, "
      "Tensor page_indices, Tensor lengths, int max_length, float scale, Tensor(a!) workspace) "
      "-> Tensor");
  m.def(
      "decode(Tensor q, Tensor k_cache, Tensor v_cache, Tensor codes, Tensor thresholds, "
      "Tensor page_indptr, Tensor page_indices, Tensor lengths, int max_length, str policy, "
      "float scale, Tensor(a!) workspace) -> Tensor");
  // One fused decode step of one layer: append_kv of the step's tokens (k_new, v_new
  // [B, num_kv_heads, head_dim] at `slots`), then decode. One call instead of two per layer.
  m.def(
      "decode_step(Tensor q, Tensor k_new, Tensor v_new, Tensor slots, Tensor(a!) k_cache, "
      "Tensor(b!) v_cache, Tensor(c!) codes, Tensor thresholds, Tensor page_indptr, "
      "Tensor page_indices, Tensor lengths, int max_length, str policy, float scale, "
      "Tensor(d!) workspace) -> Tensor");
}

TORCH_LIBRARY_IMPL(adamas, CPU, m) {
  using namespace adamas::torch_ops;
  m.impl("append_kv", &append_kv_cpu);
  m.impl("workspace_bytes", &workspace_bytes_cpu);
  m.impl("select", &select_cpu);
  m.impl("sparse_attention", &sparse_attention_cpu);
  m.impl("dense_attention", &dense_attention_cpu);
  m.impl("decode", &decode_cpu);
  m.impl("decode_step", &decode_step_cpu);
}
