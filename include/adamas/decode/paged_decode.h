// One layer's decode attention over paged pools the caller owns: the CPU counterpart of
// cuda::SparseDecoder for callers that keep K/V, codes and page tables in their own memory (the
// PyTorch ops: tensors in the cache's layout, cache/paged_kv_cache.h and cuda/device_layer.h).
//
//   paged_append            writes n tokens (K/V rounded to the pool dtype, key codes)
//   paged_select            encode → estimate → top-k with the policies' budget semantics
//   paged_sparse_attention  attention over a given selection
//   paged_dense_attention   attention over every position
//   paged_decode            select + sparse attention (dense when budget ≥ length, or `full`)
//
// Same kernels as the CPU backend (DecodeAttention): for one cache, paged_decode's output equals
// DecodeAttention::run's bit for bit, and paged_select's rows equal its selection. Tasks (one per
// sequence and KV head) run in parallel. Rows, as on the GPU: r = b · num_q_heads + h (per query
// head), or r = b · num_kv_heads + j with gqa=shared. Only `full` and `adamas` with the paper's
// estimator (dist l1 or l2, fixed thresholds, no kept tokens) are accepted, as on the GPU;
// dense_layers is the caller's. Bad arguments throw adamas::Error naming the field.
#pragma once

#include <cstddef>
#include <cstdint>

#include "adamas/cache/page_table.h"
#include "adamas/common/dtype.h"
#include "adamas/core/codes.h"
#include "adamas/core/paged_view.h"
#include "adamas/policy/policy.h"

namespace adamas {

// One layer of a paged cache, head-major as in PagedKVCache:
//   K, V   element i of (kv head h, page p, slot s) at
//          pool + h * kv_head_stride + p * kv_page_stride + (s * head_dim + i) * dtype_size  bytes
//   codes  the code page of (h, p) at code_pool + h * code_head_stride + p * code_page_stride
//   thresholds  [num_kv_heads][kMaxThermoPlanes]: head h's 2^bits − 1 ascending thresholds
struct PagedLayer {
  std::byte* k_pool = nullptr;
  std::byte* v_pool = nullptr;
  size_t kv_head_stride = 0;
  size_t kv_page_stride = 0;
  uint64_t* code_pool = nullptr;  // null: no codes (dense attention only)
  size_t code_head_stride = 0;
  size_t code_page_stride = 0;
  const float* thresholds = nullptr;
  int num_kv_heads = 0;
  int head_dim = 0;
  int page_size = 0;
  int num_pages = 0;  // pages in the pool: page ids must be below it
  DType dtype = DType::kF16;
  int bits = 2;
  bool hadamard = true;

  CodeSpec code_spec() const { return CodeSpec{head_dim, bits, hadamard, {}}; }
  void validate() const;
  // Views of sequence b of `batch`, KV head h.
  PagedKV kv(const BatchView& batch, int b, int h) const;
  PagedCodes codes(const BatchView& batch, int b, int h) const;
};

// Token i (k and v rows [n][num_kv_heads][head_dim] of `src`) goes to global slot slots[i].
void paged_append(const PagedLayer& layer, const int32_t* slots, int n, const void* k,
                  const void* v, DType src);

// q: [batch][num_q_heads][head_dim] fp32. indices: rows × index_stride (≥ min(budget,
// max_length)); counts: rows. Every selected row ends with its current token (length − 1).
void paged_select(const PagedLayer& layer, const BatchView& batch, const float* q, int num_q_heads,
                  const PolicyConfig& policy, int32_t* indices, size_t index_stride,
                  int32_t* counts);

// out: [batch][num_q_heads][head_dim] fp32; scale ≤ 0: 1/sqrt(head_dim).
void paged_sparse_attention(const PagedLayer& layer, const BatchView& batch, const float* q,
                            int num_q_heads, const int32_t* indices, size_t index_stride,
                            const int32_t* counts, bool shared_rows, float scale, float* out);
void paged_dense_attention(const PagedLayer& layer, const BatchView& batch, const float* q,
                           int num_q_heads, float scale, float* out);
void paged_decode(const PagedLayer& layer, const BatchView& batch, const float* q, int num_q_heads,
                  const PolicyConfig& policy, float scale, float* out);

// Rows of a selection: batch × (num_kv_heads with gqa=shared, else num_q_heads).
int selection_rows(const PagedLayer& layer, int batch, int num_q_heads, const PolicyConfig& policy);
// Throws unless `policy` is one the paged ops run (full, or the paper's adamas estimator).
void check_paged_policy(const PolicyConfig& policy);

}  // namespace adamas
