// The CUDA backend of the decode seam (decode/decode_backend.h): one layer's decode attention for
// a batch, over a DeviceKVCache, through SparseDecoder (adamas) or its dense kernel (full, layers
// below dense_layers). plan() sizes every workspace; run() only enqueues kernels on step.stream,
// reading the step's CSR tables (step.tables, device memory), so it can be captured in a graph.
#pragma once

#include <memory>

#include "adamas/cuda/decode.h"
#include "adamas/cuda/device_cache.h"
#include "adamas/decode/decode_backend.h"

namespace adamas::cuda {

class DeviceDecodeAttention final : public DecodeBackend {
 public:
  explicit DeviceDecodeAttention(const DeviceKVCache& cache) : cache_(cache) {}

  // Policies: full and adamas (others throw, naming the policy). The cache must hold codes with
  // the policy's bits and Hadamard setting.
  void plan(const DecodePlan& plan) override;
  void run(int layer, const DecodeStep& step, const float* q, float* out) override;
  const DecodePlan& current_plan() const override { return plan_; }
  SparseDecoder& decoder() { return *decoder_; }

 private:
  const DeviceKVCache& cache_;
  DecodePlan plan_;
  float scale_ = 0;
  std::unique_ptr<SparseDecoder> decoder_;
};

}  // namespace adamas::cuda
