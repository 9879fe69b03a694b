// The CUDA implementations of torch.ops.adamas.* (schemas in ops.cc): the GPU backend's kernels
// (cuda/kernels.h) through a cuda::SparseDecoder whose workspaces are carved from the caller's
// workspace tensor, launched on PyTorch's current stream. No host synchronization and no device
// allocation beyond the outputs (from PyTorch's caching allocator), so a step can be captured in
// a CUDA graph.
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>

#include "adamas/cuda/decode.h"
#include "adamas/cuda/kernels.h"
#include "common/check.h"
#include "torch_ops/tensors.h"

namespace adamas::torch_ops {
namespace {

cudaStream_t stream_of(const at::Tensor& t) {
  return c10::cuda::getCurrentCUDAStream(t.device().index()).stream();
}

// The GPU's view of a layer: the same pointers and strides as the CPU's PagedLayer.
cuda::DeviceLayer device_layer(const PagedLayer& p) {
  cuda::DeviceLayer d;
  d.k_pool = p.k_pool;
  d.v_pool = p.v_pool;
  d.kv_head_stride = p.kv_head_stride;
  d.kv_page_stride = p.kv_page_stride;
  d.code_pool = p.code_pool;
  d.code_head_stride = p.code_head_stride;
  d.code_page_stride = p.code_page_stride;
  d.thresholds = p.thresholds;
  d.num_kv_heads = p.num_kv_heads;
  d.head_dim = p.head_dim;
  d.page_size = p.page_size;
  d.dtype = p.dtype;
  d.bits = p.bits > 0 ? p.bits : 2;
  d.hadamard = p.hadamard;
  return d;
}

void check_workspace(const at::Tensor& ws, const at::Device& device) {
  ADAMAS_CHECK(ws.scalar_type() == at::kByte && ws.is_contiguous(),
               "workspace must be a contiguous uint8 tensor (torch.zeros(workspace_bytes(...), "
               "dtype=torch.uint8))");
  check_same_device(ws, "workspace", device);
}

// The kernels take the scale as is; the ops' convention is that ≤ 0 means 1/sqrt(head_dim).
float scale_for(double scale, const Layout& l) {
  return static_cast<float>(scale > 0 ? scale : 1.0 / std::sqrt(static_cast<double>(l.head_dim)));
}

// append_kv after check_cache: the tokens' checks, then the fused write + encode kernel.
void append_checked(const Layout& l, const at::Tensor& k_cache, const at::Tensor& v_cache,
                    const at::Tensor& codes, const at::Tensor& thresholds, const at::Tensor& k,
                    const at::Tensor& v, const at::Tensor& slots, bool hadamard) {
  ADAMAS_CHECK(l.bits > 0, "append_kv on the GPU also writes key codes: pass codes and thresholds");
  check_new_tokens(l, k, v, slots, k_cache.device());
  if (k.size(0) == 0) return;
  const at::Tensor kc = k.contiguous(), vc = v.contiguous(), sc = slots.contiguous();
  const auto layer = device_layer(paged_layer(l, k_cache, v_cache, codes, thresholds, hadamard));
  cuda::append_kv(layer, sc.data_ptr<int32_t>(), static_cast<int>(k.size(0)), kc.data_ptr(),
                  vc.data_ptr(), dtype_of(k, "k"), stream_of(k_cache));
}

// A decoder on this step's carve of the workspace (histogram and counters zeroed on `stream`).
cuda::SparseDecoder decoder_on(at::Tensor& workspace, const cuda::DeviceLayer& layer,
                               const AttentionCall& c, const PolicyConfig& sized,
                               cudaStream_t stream) {
  check_workspace(workspace, c.q.device());  // c.q is on the cache's device
  cuda::SparseDecoder d(c.num_q_heads());
  d.use_workspace(workspace.data_ptr(), static_cast<size_t>(workspace.numel()), layer,
                  c.batch.batch, c.batch.max_length, sized, stream);
  return d;
}

// decode after check_cache and the policy.
at::Tensor decode_checked(const Layout& l, const PolicyConfig& p, const at::Tensor& q,
                          const at::Tensor& k_cache, const at::Tensor& v_cache,
                          const at::Tensor& codes, const at::Tensor& thresholds,
                          const at::Tensor& page_indptr, const at::Tensor& page_indices,
                          const at::Tensor& lengths, int64_t max_length, double scale,
                          at::Tensor& workspace) {
  const AttentionCall c =
      prepare_attention(q, l, page_indptr, page_indices, lengths, max_length, k_cache.device());
  const auto layer = device_layer(paged_layer(l, k_cache, v_cache, codes, thresholds, p.hadamard));
  const cudaStream_t stream = stream_of(k_cache);
  at::Tensor out = c.new_output();
  cuda::SparseDecoder d = decoder_on(workspace, layer, c, p, stream);
  // budget ≥ length is dense by the policies' semantics; the sparse kernel over every position
  // gives it (the selection then holds all of them), `full` takes the dense kernel.
  if (p.kind == PolicyKind::kFull) {
    d.run_dense(layer, c.batch, c.q.data_ptr<float>(), scale_for(scale, l), out.data_ptr<float>(),
                stream);
  } else {
    d.run(layer, c.batch, c.q.data_ptr<float>(), p, scale_for(scale, l), out.data_ptr<float>(),
          stream);
  }
  return out.to(q.scalar_type());
}

void append_kv_cuda(at::Tensor k_cache, at::Tensor v_cache, at::Tensor codes,
                    const at::Tensor& thresholds, const at::Tensor& k, const at::Tensor& v,
                    const at::Tensor& slots, bool hadamard) {
  const c10::cuda::CUDAGuard guard(k_cache.device());
  const Layout l = check_cache(k_cache, v_cache, codes, thresholds);
  append_checked(l, k_cache, v_cache, codes, thresholds, k, v, slots, hadamard);
}

int64_t workspace_bytes_cuda(const at::Tensor& k_cache, const at::Tensor& codes,
                             const at::Tensor& thresholds, int64_t num_q_heads, int64_t max_batch,
                             int64_t max_length, const std::string& policy) {
  const Layout l = check_cache(k_cache, k_cache, codes, thresholds);
  const PolicyConfig p = parse_checked_policy(policy, l);
  ADAMAS_CHECK(num_q_heads >= 1 && num_q_heads <= (1 << 16) && max_batch >= 1 &&
                   max_batch <= 65535 && max_length >= 1 && max_length < (int64_t{1} << 31),
               "workspace_bytes: num_q_heads ({}), max_batch ({}) or max_length ({}) out of range",
               num_q_heads, max_batch, max_length);
  const auto layer = device_layer(paged_layer(l, k_cache, k_cache, codes, thresholds, p.hadamard));
  return static_cast<int64_t>(cuda::SparseDecoder::workspace_bytes(
      layer, static_cast<int>(num_q_heads), static_cast<int>(max_batch),
      static_cast<int>(max_length), p));
}

std::tuple<at::Tensor, at::Tensor> select_cuda(const at::Tensor& q, const at::Tensor& k_cache,
                                               const at::Tensor& codes,
                                               const at::Tensor& thresholds,
                                               const at::Tensor& page_indptr,
                                               const at::Tensor& page_indices,
                                               const at::Tensor& lengths, int64_t max_length,
                                               const std::string& policy, at::Tensor workspace) {
  const c10::cuda::CUDAGuard guard(k_cache.device());
  const Layout l = check_cache(k_cache, k_cache, codes, thresholds);
  const PolicyConfig p = parse_checked_policy(policy, l);
  ADAMAS_CHECK(p.kind == PolicyKind::kAdamas, "select: policy {} selects nothing (adamas does)",
               p.describe());
  const AttentionCall c =
      prepare_attention(q, l, page_indptr, page_indices, lengths, max_length, k_cache.device());
  const auto layer = device_layer(paged_layer(l, k_cache, k_cache, codes, thresholds, p.hadamard));
  const cudaStream_t stream = stream_of(k_cache);
  cuda::SparseDecoder d = decoder_on(workspace, layer, c, p, stream);
  d.select(layer, c.batch, c.q.data_ptr<float>(), p, stream);
  // The decoder's rows live in the workspace: copy them out (rows × stride, stride as written).
  const int64_t rows = static_cast<int64_t>(c.batch.batch) *
                       (p.gqa == GqaMode::kGroupShared ? l.num_kv_heads : c.num_q_heads());
  const int64_t stride = static_cast<int64_t>(d.index_stride());
  const auto opts = lengths.options();
  at::Tensor indices =
      at::from_blob(const_cast<int32_t*>(d.indices()), {rows, stride}, opts).clone();
  at::Tensor counts = at::from_blob(const_cast<int32_t*>(d.counts()), {rows}, opts).clone();
  return {indices, counts};
}

at::Tensor sparse_attention_cuda(const at::Tensor& q, const at::Tensor& k_cache,
                                 const at::Tensor& v_cache, const at::Tensor& page_indptr,
                                 const at::Tensor& page_indices, const at::Tensor& lengths,
                                 int64_t max_length, const at::Tensor& indices,
                                 const at::Tensor& counts, bool shared, double scale,
                                 at::Tensor workspace) {
  const c10::cuda::CUDAGuard guard(k_cache.device());
  const Layout l = check_cache(k_cache, v_cache, at::Tensor(), at::Tensor());
  const AttentionCall c =
      prepare_attention(q, l, page_indptr, page_indices, lengths, max_length, k_cache.device());
  check_selection(indices, counts,
                  static_cast<int64_t>(c.batch.batch) * (shared ? l.num_kv_heads : c.num_q_heads()),
                  shared, k_cache.device());
  const at::Tensor ic = indices.contiguous(), cc = counts.contiguous();
  const auto layer =
      device_layer(paged_layer(l, k_cache, v_cache, at::Tensor(), at::Tensor(), true));
  const cudaStream_t stream = stream_of(k_cache);
  cuda::SparseArgs a;
  a.indices = ic.data_ptr<int32_t>();
  a.index_stride = static_cast<size_t>(indices.size(1));
  a.counts = cc.data_ptr<int32_t>();
  a.max_count = static_cast<int>(indices.size(1));
  a.shared_rows = shared;
  // The carve of a sparse step of budget max_count holds what attention over max_count keys needs.
  PolicyConfig sized;
  sized.kind = PolicyKind::kAdamas;
  sized.budget = std::max(1, a.max_count);
  sized.gqa = shared ? GqaMode::kGroupShared : GqaMode::kPerQueryHead;
  sized.bits = layer.bits;
  sized.hadamard = layer.hadamard;
  at::Tensor out = c.new_output();
  cuda::SparseDecoder d = decoder_on(workspace, layer, c, sized, stream);
  d.attend(layer, c.batch, c.q.data_ptr<float>(), a, scale_for(scale, l), out.data_ptr<float>(),
           stream);
  return out.to(q.scalar_type());
}

at::Tensor dense_attention_cuda(const at::Tensor& q, const at::Tensor& k_cache,
                                const at::Tensor& v_cache, const at::Tensor& page_indptr,
                                const at::Tensor& page_indices, const at::Tensor& lengths,
                                int64_t max_length, double scale, at::Tensor workspace) {
  const c10::cuda::CUDAGuard guard(k_cache.device());
  const Layout l = check_cache(k_cache, v_cache, at::Tensor(), at::Tensor());
  return decode_checked(l, PolicyConfig{}, q, k_cache, v_cache, at::Tensor(), at::Tensor(),
                        page_indptr, page_indices, lengths, max_length, scale, workspace);
}

at::Tensor decode_cuda(const at::Tensor& q, const at::Tensor& k_cache, const at::Tensor& v_cache,
                       const at::Tensor& codes, const at::Tensor& thresholds,
                       const at::Tensor& page_indptr, const at::Tensor& page_indices,
                       const at::Tensor& lengths, int64_t max_length, const std::string& policy,
                       double scale, at::Tensor workspace) {
  const c10::cuda::CUDAGuard guard(k_cache.device());
  const Layout l = check_cache(k_cache, v_cache, codes, thresholds);
  return decode_checked(l, parse_checked_policy(policy, l), q, k_cache, v_cache, codes, thresholds,
                        page_indptr, page_indices, lengths, max_length, scale, workspace);
}

at::Tensor decode_step_cuda(const at::Tensor& q, const at::Tensor& k_new, const at::Tensor& v_new,
                            const at::Tensor& slots, at::Tensor k_cache, at::Tensor v_cache,
                            at::Tensor codes, const at::Tensor& thresholds,
                            const at::Tensor& page_indptr, const at::Tensor& page_indices,
                            const at::Tensor& lengths, int64_t max_length,
                            const std::string& policy, double scale, at::Tensor workspace) {
  const c10::cuda::CUDAGuard guard(k_cache.device());
  const Layout l = check_cache(k_cache, v_cache, codes, thresholds);
  const PolicyConfig p = parse_checked_policy(policy, l);
  append_checked(l, k_cache, v_cache, codes, thresholds, k_new, v_new, slots, p.hadamard);
  return decode_checked(l, p, q, k_cache, v_cache, codes, thresholds, page_indptr, page_indices,
                        lengths, max_length, scale, workspace);
}

}  // namespace
}  // namespace adamas::torch_ops

TORCH_LIBRARY_IMPL(adamas, CUDA, m) {
  using namespace adamas::torch_ops;
  m.impl("append_kv", &append_kv_cuda);
  m.impl("workspace_bytes", &workspace_bytes_cuda);
  m.impl("select", &select_cuda);
  m.impl("sparse_attention", &sparse_attention_cuda);
  m.impl("dense_attention", &dense_attention_cuda);
  m.impl("decode", &decode_cuda);
  m.impl("decode_step", &decode_step_cuda);
}
