// The GPU kernels, behind the same contracts as the CPU ones (core/*.h) and on the same cache
// layout (device_layer.h), batched: one launch covers every KV head of every sequence of a ragged
// batch. Inputs and outputs are device pointers; launches are asynchronous on `stream`; bad
// arguments throw adamas::Error on the host before anything is launched.
//
// Numerics match the CPU backend bit for bit where the CPU contract is exact: key and query codes
// (same butterfly order and rounding in the Hadamard transform), distances, histograms and the
// selected positions (ties to the lower position). Attention matches up to fp32 summation order.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "adamas/core/codes.h"
#include "adamas/core/estimate.h"
#include "adamas/cuda/device_layer.h"
#include "adamas/cuda/runtime.h"

namespace adamas::cuda {

// ---- append + encode (core/codes.h, cache/paged_kv_cache.h) --------------------------------
// Writes n tokens into the cache, each with its K/V (rounded to the cache dtype) and the key code
// of the stored key: one fused kernel does the conversion, the Hadamard transform, the
// bucketization and the bit-plane packing. Token i goes to global slot slots[i] (page
// slots[i] / page_size, slot slots[i] % page_size); k and v are [n][num_kv_heads][head_dim] of
// type `src` (f32, f16 or bf16). Serves decode tokens (n = batch) and prefill chunks alike.
void append_kv(const DeviceLayer& layer, const int32_t* slots, int n, const void* k, const void* v,
               DType src, cudaStream_t stream);

// Re-encodes the codes of n tokens already stored (after a change of thresholds).
void encode_stored_keys(const DeviceLayer& layer, const int32_t* slots, int n, cudaStream_t stream);

// Encodes queries q [rows][num_q_heads][head_dim] fp32 (post-RoPE, pre-Hadamard) into out
// [rows][num_q_heads]; query head h uses the thresholds of KV head h / (num_q_heads /
// num_kv_heads).
void encode_queries(const DeviceLayer& layer, const float* q, int rows, int num_q_heads,
                    QueryCode* out, cudaStream_t stream);

// ---- estimate (core/estimate.h) --------------------------------------------------------------
// Distances between the query codes q [batch][num_q_heads] and every key code of each sequence:
//   rows per sequence R = num_q_heads (per-head), or num_kv_heads with sum_heads (the GQA group's
//   distances summed, one shared row per KV head); row r = b * R + j.
//   out[r * out_stride + t] for t < n_b, where n_b = lengths[b], or lengths[b] − 1 with
//   exclude_last (the policies select among earlier tokens and add the current one).
//   histogram: null, or [rows][histogram_size(spec, distance, group, sum_heads)] counters that
//   the kernel increments (zero them first: select_smallest leaves them zero).
struct EstimateArgs {
  const QueryCode* q = nullptr;  // [batch][num_q_heads] query codes (encode_queries), or:
  // raw fp32 queries [batch][num_q_heads][head_dim], encoded by the estimate kernel itself (one
  // launch fewer per step; same codes). Exactly one of q and queries is set.
  const float* queries = nullptr;
  int num_q_heads = 0;
  Distance distance = Distance::kL1;
  bool sum_heads = false;
  bool exclude_last = false;
  uint16_t* out = nullptr;
  size_t out_stride = 0;  // ≥ batch.max_length
  uint32_t* histogram = nullptr;
};
void estimate_distances(const DeviceLayer& layer, const DeviceBatch& batch,
                        const EstimateArgs& args, cudaStream_t stream);

// ---- top-k (core/topk.h) ---------------------------------------------------------------------
// Per row: the k smallest of its n distances, positions written in ascending order, ties to the
// lower position (the CPU select_smallest exactly); k ≥ n gives 0 .. n − 1. Linear time without
// sorting: the row's histogram gives the k-th value, then one pass writes the positions in order
// (rows split over blocks, a count pass and a write pass).
//   Row r belongs to sequence r / rows_per_seq; n = lengths[seq] (− 1 with add_current).
//   add_current: the policies' semantics, select k = budget − 1 among the first length − 1
//   positions and append length − 1 (so budget ≥ length gives every position).
//   histogram: [rows][histogram_size] from estimate_distances with the same n; zero on return.
//   counts[r]: positions written to out[r * out_stride ...].
struct TopKArgs {
  const uint16_t* values = nullptr;
  size_t value_stride = 0;
  uint32_t* histogram = nullptr;
  int histogram_size = 0;
  const int32_t* lengths = nullptr;  // device, per sequence
  int rows_per_seq = 1;
  int rows = 0;
  int max_length = 0;  // host bound on lengths
  int budget = 0;      // k, or k + 1 with add_current
  bool add_current = false;
  int32_t* out = nullptr;
  size_t out_stride = 0;  // ≥ min(budget, max_length): a row never holds more
  int32_t* counts = nullptr;
};
// Device scratch words select_smallest needs for `rows` rows of at most max_length values.
size_t select_scratch_words(int rows, int max_length);
void select_smallest(const TopKArgs& args, uint32_t* scratch, cudaStream_t stream);

// ---- attention (core/attention.h) ------------------------------------------------------------
// Decode attention split over the key dimension (flash-decoding): each (sequence, KV head) is
// cut into splits that run as separate blocks, so batch 1 fills the GPU; the last block of each
// to finish merges the splits' (max, sum, output) with the stable-softmax rescaling, in the same
// launch. K/V are read once per GQA group. q and out are [batch][num_q_heads][head_dim] fp32.
// The workspace holds the splits' partial results and the arrival counters (zero between
// launches: the merging block resets them). One workspace serves one stream at a time.
class AttentionWorkspace {
 public:
  // Grow (never shrink) to `floats` partials and `n` counters; new counters are zeroed (on the
  // legacy default stream). Within the reserved sizes these calls neither allocate nor write.
  // On attached memory, growing past it throws adamas::Error.
  float* partials(size_t floats) {
    buf_.grow(floats, "attention partials");
    return buf_.data();
  }
  uint32_t* counters(size_t n) {
    if (counters_.grow(n, "attention counters")) {
      check(cudaMemset(counters_.data(), 0, n * sizeof(uint32_t)), "cudaMemset");
    }
    return counters_.data();
  }
  // Sizes both ahead of time (SparseDecoder::plan): later launches that fit allocate nothing.
  void reserve(size_t floats, size_t n) {
    partials(floats);
    counters(n);
  }
  // Uses the caller's device memory instead (counters zeroed by the caller; launches keep them
  // zero).
  void attach(float* partials, size_t floats, uint32_t* counters, size_t n) {
    buf_.attach(partials, floats);
    counters_.attach(counters, n);
  }
  size_t partials_capacity() const { return buf_.size(); }
  size_t counters_capacity() const { return counters_.size(); }
  const float* partials_data() const { return buf_.data(); }
  const uint32_t* counters_data() const { return counters_.data(); }

 private:
  WorkBuffer<float> buf_;
  WorkBuffer<uint32_t> counters_;
};

// Over every position of every sequence. head_dim 64 and 128 run on tensor cores with q and the
// softmax weights split into 16-bit pieces (fp32-level scores and weights, the same tolerance
// against ref::dense_decode_attention as the fp32 kernel that serves the other head sizes).
void dense_decode_attention(const DeviceLayer& layer, const DeviceBatch& batch, const float* q,
                            int num_q_heads, float scale, float* out, AttentionWorkspace& ws,
                            cudaStream_t stream);

// Over the selected positions: row r of indices (row stride index_stride, counts[r] ≥ 1 entries
// in [0, length)) serves query head h of sequence b at r = b * num_q_heads + h, or, with
// shared_rows, the whole GQA group of KV head j at r = b * num_kv_heads + j.
struct SparseArgs {
  const int32_t* indices = nullptr;
  size_t index_stride = 0;
  const int32_t* counts = nullptr;
  int max_count = 0;  // host bound on counts
  bool shared_rows = false;
};
void sparse_decode_attention(const DeviceLayer& layer, const DeviceBatch& batch, const float* q,
                             int num_q_heads, const SparseArgs& args, float scale, float* out,
                             AttentionWorkspace& ws, cudaStream_t stream);

// ---- fused top-k + attention ------------------------------------------------------------------
// The decode step's fast path: select_count (select_smallest's count pass), then one kernel in
// which each block takes one chunk of a row's distances, picks the positions select_smallest
// (add_current) would write there, and attends to them at once, so the selection never goes
// through memory. Same keys as select_smallest + sparse_decode_attention, same output up to fp32
// summation order.
//   topk: as for select_smallest with add_current (its out and counts are not used); rows are
//   per query head, or per KV head with shared_rows; the same args and scratch for both calls.
//   select_sparse_decode_attention leaves the histogram zero.
void select_count(const TopKArgs& topk, uint32_t* scratch, cudaStream_t stream);
void select_sparse_decode_attention(const DeviceLayer& layer, const DeviceBatch& batch,
                                    const float* q, int num_q_heads, const TopKArgs& topk,
                                    bool shared_rows, float scale, float* out, uint32_t* scratch,
                                    AttentionWorkspace& ws, cudaStream_t stream);

}  // namespace adamas::cuda
