#include "adamas/model/weights.h"

#include <fmt/format.h>

#include <map>
#include <string>
#include <string_view>

#include "common/check.h"

namespace adamas::model {
namespace {

DType to_dtype(TensorType t) {
  switch (t) {
    case TensorType::kF16:
      return DType::kF16;
    case TensorType::kBF16:
      return DType::kBF16;
    default:
      return DType::kF32;
  }
}

class Loader {
 public:
  Loader(const TensorStore& s, ModelWeights& w) : s_(s), w_(w) {}

  Matrix matrix(const std::string& name, int rows, int cols) {
    const TensorView& t = s_.require(name, {rows, cols});
    count(t);
    return Matrix{t.data, to_dtype(t.type), rows, cols};
  }
  std::vector<float> vector(const std::string& name, int n) {
    const TensorView& t = s_.require(name, {n});
    count(t);
    std::vector<float> v(n);
    convert_to_f32(t.data, to_dtype(t.type), v.data(), n);
    return v;
  }
  std::vector<float> optional_vector(bool present, const std::string& name, int n) {
    return present ? vector(name, n) : std::vector<float>{};
  }
  DType majority() const {
    DType best = DType::kF32;
    size_t most = 0;
    for (const auto& [t, b] : by_type_)
      if (b > most) most = b, best = t;
    return best;
  }

 private:
  void count(const TensorView& t) {
    w_.bytes += t.bytes;
    by_type_[to_dtype(t.type)] += t.bytes;
  }
  const TensorStore& s_;
  ModelWeights& w_;
  std::map<DType, size_t> by_type_;
};

// Layers the checkpoint holds beyond the config's would be silently dropped: a config/checkpoint
// mismatch. Throws naming the lowest such layer.
void check_no_extra_layers(const ModelConfig& c, const TensorStore& s) {
  constexpr std::string_view kPrefix = "model.layers.";
  int64_t first = -1;
  std::string first_name;
  for (const std::string& name : s.names()) {
    if (!name.starts_with(kPrefix)) continue;
    const size_t digits = name.find_first_not_of("0123456789", kPrefix.size());
    if (digits == kPrefix.size() || digits == std::string::npos || name[digits] != '.') continue;
    // More digits than an int64 holds is beyond any config too.
    const std::string_view num(name.data() + kPrefix.size(), digits - kPrefix.size());
    const int64_t layer = num.size() > 18 ? INT64_MAX : std::stoll(std::string(num));
    if (layer >= c.num_layers && (first < 0 || layer < first)) first = layer, first_name = name;
  }
  ADAMAS_CHECK(first < 0,
               "{}: checkpoint has layer {} ('{}') but config.json has num_hidden_layers = {} "
               "(layers 0..{}): the config does not match the weights",
               s.source(), first, first_name, c.num_layers, c.num_layers - 1);
}

}  // namespace

ModelWeights load_weights(const ModelConfig& c, std::shared_ptr<const TensorStore> store) {
  ModelWeights w;
  w.store = store;
  check_no_extra_layers(c, *store);
  Loader L(*store, w);
  const int D = c.hidden_size, I = c.intermediate_size, d = c.head_dim;
  const int qd = c.num_heads * d, kvd = c.num_kv_heads * d;
  w.embed = L.matrix("model.embed_tokens.weight", c.vocab_size, D);
  w.final_norm = L.vector("model.norm.weight", D);
  // Tied checkpoints usually omit lm_head.weight; some write it anyway (then it is used).
  if (c.tie_word_embeddings && store->find("lm_head.weight") == nullptr) {
    w.lm_head = w.embed;
  } else {
    w.lm_head = L.matrix("lm_head.weight", c.vocab_size, D);
  }
  for (int i = 0; i < c.num_layers; ++i) {
    const std::string p = fmt::format("model.layers.{}.", i);
    LayerWeights l;
    l.attn_norm = L.vector(p + "input_layernorm.weight", D);
    l.mlp_norm = L.vector(p + "post_attention_layernorm.weight", D);
    l.q = L.matrix(p + "self_attn.q_proj.weight", qd, D);
    l.k = L.matrix(p + "self_attn.k_proj.weight", kvd, D);
    l.v = L.matrix(p + "self_attn.v_proj.weight", kvd, D);
    l.o = L.matrix(p + "self_attn.o_proj.weight", D, qd);
    l.q_bias = L.optional_vector(c.qkv_bias, p + "self_attn.q_proj.bias", qd);
    l.k_bias = L.optional_vector(c.qkv_bias, p + "self_attn.k_proj.bias", kvd);
    l.v_bias = L.optional_vector(c.qkv_bias, p + "self_attn.v_proj.bias", kvd);
    l.o_bias = L.optional_vector(c.o_bias, p + "self_attn.o_proj.bias", D);
    l.gate = L.matrix(p + "mlp.gate_proj.weight", I, D);
    l.up = L.matrix(p + "mlp.up_proj.weight", I, D);
    l.down = L.matrix(p + "mlp.down_proj.weight", D, I);
    l.gate_bias = L.optional_vector(c.mlp_bias, p + "mlp.gate_proj.bias", I);
    l.up_bias = L.optional_vector(c.mlp_bias, p + "mlp.up_proj.bias", I);
    l.down_bias = L.optional_vector(c.mlp_bias, p + "mlp.down_proj.bias", D);
    w.layers.push_back(std::move(l));
  }
  w.dtype = L.majority();
  return w;
}

}  // namespace adamas::model
