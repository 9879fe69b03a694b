// One layer's decode attention on the GPU for a ragged batch, the CPU DecodeAttention's path:
//   estimate (query encoding fused in) → top-k → sparse attention,   or dense attention:
// four launches (estimate, top-k count, top-k write, attention) or three (the write fused into
// attention, SparseDecoder::TopKPath), each covering every sequence and head. Selection follows
// an adamas PolicyConfig (policy/policy.h: budget, distance, gqa) with the CPU policies' budget
// semantics: the current token is always included, and budget ≥ length attends to every position
// (the sparse kernel over all positions: dense up to fp32 summation order). dense_layers is the
// caller's: it calls run_dense for those layers.
//
// plan() sizes every device workspace for the largest step; a run that fits the plan makes no
// allocation, memset or host synchronization (it only enqueues kernels on its stream), so it can
// be captured in a CUDA graph. A run beyond the plan still works: it grows the workspaces first.
#pragma once

#include <cuda_runtime_api.h>

#include <array>
#include <cstddef>
#include <utility>
#include <vector>

#include "adamas/core/codes.h"
#include "adamas/cuda/kernels.h"
#include "adamas/cuda/runtime.h"
#include "adamas/policy/policy.h"

namespace adamas::cuda {

// Per-stage device time of decode steps, from CUDA events recorded between the launches.
class StageTimer {
 public:
  enum Stage { kEncode, kEstimate, kTopK, kAttention, kStages };
  StageTimer();
  ~StageTimer();
  StageTimer(const StageTimer&) = delete;
  StageTimer& operator=(const StageTimer&) = delete;
  void record(int boundary, cudaStream_t stream);  // boundary 0 .. kStages
  // Milliseconds of each stage of the last recorded step (synchronizes).
  std::array<float, kStages> stage_ms() const;
  float total_ms() const;

 private:
  std::array<cudaEvent_t, kStages + 1> events_{};
};

class SparseDecoder {
 public:
  // How top-k hands the selection to attention (an implementation knob: the selected keys are
  // the same on every path):
  //   kIndices  select_smallest writes it to memory (indices()/counts(): tests, recall metrics);
  //   kFused    each attention block selects from its chunk of the distances
  //             (select_sparse_decode_attention): one launch and one pass fewer;
  //   kAuto     kFused where it measured faster on the H200 (rows of 8+ chunks of 8192
  //             positions, at most 1024 row-chunks: long contexts at small batch), else kIndices.
  enum class TopKPath { kAuto, kFused, kIndices };

  // num_q_heads: a multiple of the layer's num_kv_heads.
  explicit SparseDecoder(int num_q_heads) : num_q_heads_(num_q_heads) {}

  void set_topk_path(TopKPath path) { topk_path_ = path; }
  TopKPath topk_path() const { return topk_path_; }

  // Sizes every workspace (distances, histogram (zeroed), top-k scratch, indices, counts,
  // attention partials and counters, for the indices and the fused paths and for run_dense) for
  // any step of this layer shape with batch ≤ max_batch and max_length ≤ max_length under
  // `policy`, then waits for the zeroing. The only call that needs to allocate. Throws
  // adamas::Error naming the field (policy not adamas, bits / Hadamard unlike the layer's, ...).
  void plan(const DeviceLayer& layer, int max_batch, int max_length, const PolicyConfig& policy);

  // The same workspaces in the caller's memory (the PyTorch ops: one workspace tensor per cache,
  // so that steps allocate nothing and a CUDA graph can hold them). workspace_bytes() is what a
  // plan(layer, max_batch, max_length, policy) needs (with a policy other than adamas: what
  // run_dense needs). use_workspace() carves `bytes` of device memory at `base` (256-byte
  // aligned) into the workspaces of one step of `batch` sequences of ≤ max_length tokens and
  // zeroes its histogram and counters on `stream` (one memset: the carve depends on the step, so
  // no state is assumed from earlier steps). The decoder then never allocates: a step beyond
  // the carve throws adamas::Error. One stream at a time per workspace.
  static size_t workspace_bytes(const DeviceLayer& layer, int num_q_heads, int max_batch,
                                int max_length, const PolicyConfig& policy);
  void use_workspace(void* base, size_t bytes, const DeviceLayer& layer, int batch, int max_length,
                     const PolicyConfig& policy, cudaStream_t stream);
  // q, out: device [batch][num_q_heads][head_dim] fp32. With a timer, events mark the stages.
  // policy.kind must be kAdamas, its bits and hadamard the layer's; budget, distance and gqa
  // (kGroupShared: one selection per GQA group from the summed distances) select the keys.
  void run(const DeviceLayer& layer, const DeviceBatch& batch, const float* q,
           const PolicyConfig& policy, float scale, float* out, cudaStream_t stream,
           StageTimer* timer = nullptr);
  void run_dense(const DeviceLayer& layer, const DeviceBatch& batch, const float* q, float scale,
                 float* out, cudaStream_t stream);
  // Sparse attention over a caller's selection (SparseArgs), with this decoder's workspace.
  void attend(const DeviceLayer& layer, const DeviceBatch& batch, const float* q,
              const SparseArgs& args, float scale, float* out, cudaStream_t stream);
  // The selection alone (estimate → top-k into indices()/counts()), for callers that attend
  // themselves (the PyTorch select op).
  void select(const DeviceLayer& layer, const DeviceBatch& batch, const float* q,
              const PolicyConfig& policy, cudaStream_t stream);

  // The selection of the last run() that took the kIndices path: rows as in SparseArgs,
  // `index_stride` apart.
  const int32_t* indices() const { return indices_.data(); }
  const int32_t* counts() const { return counts_.data(); }
  size_t index_stride() const { return index_stride_; }

  // Every device workspace as (address, bytes), in a fixed order: tests check with it that runs
  // within a plan allocate nothing.
  std::vector<std::pair<const void*, size_t>> workspaces() const;

 private:
  // Checks, sizes the selection buffers and launches the estimate; returns the top-k arguments.
  TopKArgs estimate(const DeviceLayer& layer, const DeviceBatch& batch, const float* q,
                    const PolicyConfig& policy, cudaStream_t stream, StageTimer* timer);
  // Grows the buffers to hold `rows` selection rows of ≤ max_length positions (no-op when they
  // fit); the histogram's new words are zeroed on `stream`.
  void reserve_selection(int rows, int max_length, int budget, int hist_size, cudaStream_t stream);

  int num_q_heads_;
  TopKPath topk_path_ = TopKPath::kAuto;
  WorkBuffer<uint16_t> distances_;
  WorkBuffer<uint32_t> histogram_;  // kept zero between steps (select_smallest clears it)
  WorkBuffer<uint32_t> scratch_;
  WorkBuffer<int32_t> indices_, counts_;
  size_t index_stride_ = 0;
  AttentionWorkspace attention_;
};

}  // namespace adamas::cuda
