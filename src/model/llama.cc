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
  check_weights_finite(weights);
  return std::make_unique<LlamaModel>(std::move(config), std::move(weights));
}

void RuntimeOptions::validate() const {
  policy.validate();
  ADAMAS_CHECK(max_tokens >= 1 && max_batch >= 1, "max_tokens ({}) and max_batch ({}) must be ≥ 1",
               max_tokens, max_batch);
  ADAMAS_CHECK(prefill_chunk >= 1, "prefill_chunk must be ≥ 1, got {}", prefill_chunk);
  // Checked here, before any size is divided by it (the cache config checks it again).
  ADAMAS_CHECK(page_size >= 1 && page_size <= 4096,
               "page_size (--page-size) must be in [1, 4096], got {}", page_size);
}

CacheConfig cache_config_for(const ModelConfig& c, const RuntimeOptions& o) {
  o.validate();
  CacheConfig cc;
  cc.num_layers = c.num_layers;
  cc.num_kv_heads = c.num_kv_heads;
  cc.head_dim = c.head_dim;
  cc.page_size = o.page_size;
  cc.dtype = o.kv_dtype;
  // Only what the policy reads: codes cost an encode per appended key, min/max a pass per page.
  cc.store_codes = o.any_policy || o.policy.kind == PolicyKind::kAdamas;
  cc.store_page_minmax = o.any_policy || o.policy.kind == PolicyKind::kQuest;
  configure_cache_for(o.policy, cc);
  cc.num_pages = cc.pages_for(o.max_tokens) + o.max_batch;
  cc.validate();
  return cc;
}

}  // namespace adamas::model
