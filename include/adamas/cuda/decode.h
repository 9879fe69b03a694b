// One layer's decode attention on the GPU for a ragged batch, the CPU DecodeAttention's path:
//   estimate (query encoding fused in) → top-k → sparse attention,   or dense attention:
// four launches (estimate, top-k count, top-k write, attention) or three (the write fused into
// attention, SparseConfig::topk_path), each covering every sequence and head. Budget semantics
// are the CPU policies': the current token is always included, and budget ≥ length attends to
// every position (the sparse kernel over all positions: dense up to fp32 summation order).
#pragma once

#include <cuda_runtime_api.h>

#include <array>

#include "adamas/core/codes.h"
#include "adamas/cuda/kernels.h"
#include "adamas/cuda/runtime.h"

namespace adamas::cuda {

struct SparseConfig {
  int budget = 256;
  Distance distance = Distance::kL1;
  bool shared_gqa = false;  // one selection per GQA group (summed distances) instead of per head
  // How top-k hands the selection to attention:
  //   kIndices  select_smallest writes it to memory (indices()/counts(): tests, recall metrics);
  //   kFused    each attention block selects from its chunk of the distances
  //             (select_sparse_decode_attention): one launch and one pass fewer;
  //   kAuto     kFused where it measured faster on the H200 (rows of 8+ chunks of 8192
  //             positions, at most 1024 row-chunks: long contexts at small batch), else kIndices.
  enum class TopKPath { kAuto, kFused, kIndices };
  TopKPath topk_path = TopKPath::kAuto;
};

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
  // num_q_heads: a multiple of the layer's num_kv_heads.
  explicit SparseDecoder(int num_q_heads) : num_q_heads_(num_q_heads) {}

  // q, out: device [batch][num_q_heads][head_dim] fp32. With a timer, events mark the stages.
  void run(const DeviceLayer& layer, const DeviceBatch& batch, const float* q,
           const SparseConfig& config, float scale, float* out, cudaStream_t stream,
           StageTimer* timer = nullptr);
  void run_dense(const DeviceLayer& layer, const DeviceBatch& batch, const float* q, float scale,
                 float* out, cudaStream_t stream);

  // The selection of the last run() that took the kIndices path: rows as in SparseArgs,
  // `index_stride` apart.
  const int32_t* indices() const { return indices_.data(); }
  const int32_t* counts() const { return counts_.data(); }
  size_t index_stride() const { return index_stride_; }

 private:
  int num_q_heads_;
  DeviceBuffer<uint16_t> distances_;
  DeviceBuffer<uint32_t> histogram_;  // kept zero between steps (select_smallest clears it)
  DeviceBuffer<uint32_t> scratch_;
  DeviceBuffer<int32_t> indices_, counts_;
  size_t index_stride_ = 0;
  AttentionWorkspace attention_;
};

}  // namespace adamas::cuda
