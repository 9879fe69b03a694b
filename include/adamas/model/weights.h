// The weights of a Llama-family model as views into the memory-mapped safetensors (matrices stay
// in their file dtype; ops.h converts blocks on the fly), plus small fp32 copies of norms and
// biases. Every tensor is checked for presence, float dtype and shape when loading.
#pragma once

#include <memory>
#include <vector>

#include "adamas/common/dtype.h"
#include "adamas/model/config.h"
#include "adamas/model/safetensors.h"

namespace adamas::model {

// Row-major [rows][cols]: a linear layer's weight is [out_features][in_features], as HF stores it.
struct Matrix {
  const void* data = nullptr;
  DType dtype = DType::kF32;
  int rows = 0;
  int cols = 0;
  const void* row(int r) const {
    return static_cast<const std::byte*>(data) + size_t(r) * cols * dtype_size(dtype);
  }
};

struct LayerWeights {
  std::vector<float> attn_norm, mlp_norm;             // [hidden]
  Matrix q, k, v, o;                                  // q [H·d][hidden], k/v [Hkv·d][hidden]
  std::vector<float> q_bias, k_bias, v_bias, o_bias;  // empty when the model has none
  Matrix gate, up, down;                              // [inter][hidden] ×2, [hidden][inter]
  std::vector<float> gate_bias, up_bias, down_bias;
};

struct ModelWeights {
  std::shared_ptr<const TensorStore> store;  // keeps the mappings alive
  Matrix embed;                              // [vocab][hidden]
  Matrix lm_head;                            // [vocab][hidden] (= embed when tied)
  std::vector<float> final_norm;             // [hidden]
  std::vector<LayerWeights> layers;
  DType dtype = DType::kF32;  // of the big matrices (the most common one)
  size_t bytes = 0;           // of all tensors used
};

// Loads and checks every tensor the config calls for. HF names: model.embed_tokens.weight,
// model.layers.{i}.self_attn.{q,k,v,o}_proj.{weight,bias}, .mlp.{gate,up,down}_proj.weight,
// .input_layernorm.weight, .post_attention_layernorm.weight, model.norm.weight, lm_head.weight.
ModelWeights load_weights(const ModelConfig& config, std::shared_ptr<const TensorStore> store);

}  // namespace adamas::model
