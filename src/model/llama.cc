#include "adamas/model/llama.h"

#include <algorithm>
#include <cstring>

#include "adamas/model/ops.h"
#include "common/check.h"

namespace adamas::model {

LlamaModel::LlamaModel(ModelConfig config, ModelWeights weights)
    : config_(std::move(config)), weights_(std::move(weights)) {
  config_.validate();
  ADAMAS_CHECK(static_cast<int>(weights_.layers.size()) == config_.num_layers,
               "weights hold {} layers, config.json says {}", weights_.layers.size(),
               config_.num_layers);
  inv_freq_ = rope_inv_freq(config_.rope, config_.head_dim);
}

std::unique_ptr<LlamaModel> LlamaModel::load(const std::filesystem::path& dir) {
  ModelConfig config = load_config(dir);
  auto store = std::make_shared<const TensorStore>(dir);
  ModelWeights weights = load_weights(config, std::move(store));
  return std::make_unique<LlamaModel>(std::move(config), std::move(weights));
}

}  // namespace adamas::model
