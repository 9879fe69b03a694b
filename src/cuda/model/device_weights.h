// A model's weights in GPU memory, uploaded once from the memory-mapped safetensors (no host copy
// of the model is made: each tensor goes from the mapping to the device, converted there when its
// dtype is not the one the GPU runs). q/k/v and gate/up are stored as one fused matrix each, so a
// layer's input projections are two products instead of five.
#pragma once

#include <functional>
#include <vector>

#include "adamas/cuda/runtime.h"
#include "adamas/model/llama.h"
#include "cuda/model/gemm.h"

namespace adamas::cuda {

struct DeviceLayerWeights {
  DeviceMatrix qkv;                  // [(H + 2·Hkv)·d][hidden]: q rows, then k, then v
  DeviceMatrix o;                    // [hidden][H·d]
  DeviceMatrix gate_up;              // [2·inter][hidden]: gate rows, then up
  DeviceMatrix down;                 // [hidden][inter]
  const float* attn_norm = nullptr;  // [hidden]
  const float* mlp_norm = nullptr;
  const float* qkv_bias = nullptr;  // [(H + 2·Hkv)·d] or null
  const float* o_bias = nullptr;
  const float* gate_up_bias = nullptr;
  const float* down_bias = nullptr;
};

class DeviceWeights {
 public:
  // dtype: what the GPU runs (bf16, f16 or f32); every matrix is converted to it on upload.
  // progress(done_bytes, total_bytes) after each tensor.
  DeviceWeights(const model::LlamaModel& model, DType dtype, cudaStream_t stream,
                const std::function<void(size_t, size_t)>& progress = {});

  DType dtype() const { return dtype_; }
  const DeviceMatrix& embed() const { return embed_; }
  const DeviceMatrix& lm_head() const { return lm_head_; }
  const float* final_norm() const { return final_norm_; }
  const float* inv_freq() const { return inv_freq_; }
  const DeviceLayerWeights& layer(int i) const { return layers_[i]; }
  // Bytes of the matrices a decode step reads (every layer's, the final norm and the LM head).
  size_t step_bytes() const { return step_bytes_; }
  size_t bytes() const { return bytes_; }

 private:
  DeviceMatrix matrix(std::initializer_list<const model::Matrix*> parts, cudaStream_t stream);
  const float* vector(std::initializer_list<const std::vector<float>*> parts);

  DType dtype_;
  std::vector<DeviceBuffer<std::byte>> storage_;
  DeviceBuffer<std::byte> staging_;
  DeviceMatrix embed_, lm_head_;
  const float* final_norm_ = nullptr;
  const float* inv_freq_ = nullptr;
  std::vector<DeviceLayerWeights> layers_;
  size_t step_bytes_ = 0, bytes_ = 0;
  size_t done_ = 0, total_ = 0;
  std::function<void(size_t, size_t)> progress_;
};

}  // namespace adamas::cuda
