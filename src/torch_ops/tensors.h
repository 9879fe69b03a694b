// The PyTorch ops' tensors, checked and read as the kernels' views. One layer of the paged cache:
//   k_cache, v_cache  [num_kv_heads, num_pages, page_size, head_dim]  f16 / bf16 (CPU: also f32)
//   codes             [num_kv_heads, num_pages, code_page_words]      int64 (core/codes.h pages)
//   thresholds        [num_kv_heads, 7]                               f32, first 2^bits − 1 used
// and a ragged batch as CSR page tables (int32, on the cache's device): page_indptr [B + 1],
// page_indices [page_indptr[B]], lengths [B], with a host bound max_length ≥ every length.
// Every check throws adamas::Error naming the argument (RuntimeError in Python).
#pragma once

#include <ATen/ATen.h>

#include <string>

#include "adamas/cache/page_table.h"
#include "adamas/decode/paged_decode.h"
#include "adamas/policy/policy.h"

namespace adamas::torch_ops {

struct Layout {
  int num_kv_heads = 0, num_pages = 0, page_size = 0, head_dim = 0;
  int bits = 0;  // 0: no codes given
  DType dtype = DType::kF16;
};

DType dtype_of(const at::Tensor& t, const char* name);

// k_cache and v_cache (and codes and thresholds when defined and non-empty) against each other.
Layout check_cache(const at::Tensor& k_cache, const at::Tensor& v_cache, const at::Tensor& codes,
                   const at::Tensor& thresholds);

// The paged view of the tensors (pointers into them; codes null when bits == 0).
PagedLayer paged_layer(const Layout& l, const at::Tensor& k_cache, const at::Tensor& v_cache,
                       const at::Tensor& codes, const at::Tensor& thresholds, bool hadamard);

// Shapes, dtypes and devices of the tables; contents are read only by the CPU ops (on the GPU
// that would cost a host synchronization: the kernels trust them).
BatchView check_tables(const at::Tensor& page_indptr, const at::Tensor& page_indices,
                       const at::Tensor& lengths, int64_t max_length, const at::Device& device);

// q [B, num_q_heads, head_dim] as contiguous fp32; B must be the tables' batch.
at::Tensor queries_f32(const at::Tensor& q, const Layout& l, int batch);

// What every attention op derives after the cache checks: the batch's tables and the queries as
// contiguous fp32 (q [B, num_q_heads, head_dim] on `device`, B the tables' batch).
struct AttentionCall {
  BatchView batch;
  at::Tensor q;
  int num_q_heads() const { return static_cast<int>(q.size(1)); }
  at::Tensor new_output() const { return at::empty(q.sizes(), q.options()); }
};
AttentionCall prepare_attention(const at::Tensor& q, const Layout& l, const at::Tensor& page_indptr,
                                const at::Tensor& page_indices, const at::Tensor& lengths,
                                int64_t max_length, const at::Device& device);

// The policy string, parsed and checked against the cache (bits, codes present).
PolicyConfig parse_checked_policy(const std::string& spec, const Layout& l);

void check_same_device(const at::Tensor& t, const char* name, const at::Device& device);

// A selection for sparse attention: indices int32 [rows, k], counts int32 [rows] on `device`.
void check_selection(const at::Tensor& indices, const at::Tensor& counts, int64_t rows, bool shared,
                     const at::Device& device);

// The tokens an append writes: k, v [n, num_kv_heads, head_dim] (any float dtype), slots int32
// [n], all on `device`.
void check_new_tokens(const Layout& l, const at::Tensor& k, const at::Tensor& v,
                      const at::Tensor& slots, const at::Device& device);

}  // namespace adamas::torch_ops
