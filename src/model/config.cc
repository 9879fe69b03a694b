#include "adamas/model/config.h"

#include <fmt/format.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common/check.h"

namespace adamas::model {
namespace {

using nlohmann::json;

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  ADAMAS_CHECK(in.good(), "cannot open {}", path.string());
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A required integer field.
int get_int(const json& j, std::string_view source, const char* key) {
  auto it = j.find(key);
  ADAMAS_CHECK(it != j.end() && !it->is_null(), "{}: missing field '{}'", source, key);
  ADAMAS_CHECK(it->is_number_integer(), "{}: field '{}' must be an integer, got {}", source, key,
               it->dump());
  return it->get<int>();
}

template <class T>
T get_or(const json& j, const char* key, T fallback) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  return it->get<T>();
}

std::vector<int> id_list(const json& v) {
  std::vector<int> out;
  if (v.is_number_integer()) out.push_back(v.get<int>());
  if (v.is_array())
    for (const auto& x : v)
      if (x.is_number_integer()) out.push_back(x.get<int>());
  return out;
}

RopeConfig parse_rope(const json& j, std::string_view source) {
  RopeConfig r;
  r.theta = get_or<double>(j, "rope_theta", 10000.0);
  // transformers 5 writes one "rope_parameters" object (rope_type, rope_theta, factor, ...);
  // earlier versions rope_theta beside a "rope_scaling" object (or null).
  auto it = j.find("rope_parameters");
  if (it != j.end() && it->is_object()) {
    r.theta = get_or<double>(*it, "rope_theta", r.theta);
  } else {
    it = j.find("rope_scaling");
  }
  if (it == j.end() || it->is_null()) return r;
  const json& s = *it;
  ADAMAS_CHECK(s.is_object(), "{}: rope_scaling must be an object or null, got {}", source,
               s.dump());
  // HF wrote "type" before transformers 4.45 and "rope_type" since.
  std::string type = get_or<std::string>(s, "rope_type", get_or<std::string>(s, "type", ""));
  if (type == "default" || type.empty()) return r;
  r.factor = get_or<double>(s, "factor", 1.0);
  ADAMAS_CHECK(r.factor > 0, "{}: rope_scaling.factor must be > 0, got {}", source, r.factor);
  if (type == "linear") {
    r.type = RopeType::kLinear;
  } else if (type == "llama3") {
    r.type = RopeType::kLlama3;
    r.low_freq_factor = get_or<double>(s, "low_freq_factor", 1.0);
    r.high_freq_factor = get_or<double>(s, "high_freq_factor", 4.0);
    r.original_max_position_embeddings = get_or<int>(s, "original_max_position_embeddings", 8192);
    ADAMAS_CHECK(r.high_freq_factor > r.low_freq_factor,
                 "{}: llama3 rope_scaling needs high_freq_factor ({}) > low_freq_factor ({})",
                 source, r.high_freq_factor, r.low_freq_factor);
  } else {
    throw Error(
        fmt::format("{}: unsupported rope_scaling type '{}': expected default, linear or llama3",
                    source, type));
  }
  return r;
}

}  // namespace

void ModelConfig::validate() const {
  auto positive = [](int v, const char* name) {
    ADAMAS_CHECK(v > 0, "config: {} must be > 0, got {}", name, v);
  };
  positive(vocab_size, "vocab_size");
  positive(hidden_size, "hidden_size");
  positive(intermediate_size, "intermediate_size");
  positive(num_layers, "num_hidden_layers");
  positive(num_heads, "num_attention_heads");
  positive(num_kv_heads, "num_key_value_heads");
  ADAMAS_CHECK(num_heads % num_kv_heads == 0,
               "config: num_attention_heads ({}) must be a multiple of num_key_value_heads ({})",
               num_heads, num_kv_heads);
  ADAMAS_CHECK(head_dim >= 16 && head_dim <= 256 && (head_dim & (head_dim - 1)) == 0,
               "config: head_dim must be a power of two in [16, 256] (the Hadamard transform "
               "needs it), got {}",
               head_dim);
  ADAMAS_CHECK(rms_norm_eps > 0, "config: rms_norm_eps must be > 0, got {}", rms_norm_eps);
}

std::string ModelConfig::describe() const {
  const char* rope_name = rope.type == RopeType::kLinear   ? "linear"
                          : rope.type == RopeType::kLlama3 ? "llama3"
                                                           : "default";
  return fmt::format(
      "{} ({}): {} layers, hidden {}, intermediate {}, heads {} (kv {}, head_dim {}), vocab {}, "
      "rope theta {} {}{}, {}{}{}",
      architecture, model_type, num_layers, hidden_size, intermediate_size, num_heads, num_kv_heads,
      head_dim, vocab_size, rope.theta, rope_name,
      rope.type == RopeType::kDefault ? "" : fmt::format(" x{}", rope.factor),
      tie_word_embeddings ? "tied embeddings" : "separate lm_head", qkv_bias ? ", qkv bias" : "",
      sliding_window > 0 ? fmt::format(", sliding window {}", sliding_window) : "");
}

ModelConfig parse_config(std::string_view text, std::string_view source) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    throw Error(fmt::format("{}: not valid JSON: {}", source, e.what()));
  }
  ADAMAS_CHECK(j.is_object(), "{}: expected a JSON object", source);
  ModelConfig c;
  try {
    c.model_type = get_or<std::string>(j, "model_type", "");
    if (j.contains("architectures") && j["architectures"].is_array() && !j["architectures"].empty())
      c.architecture = j["architectures"][0].get<std::string>();
    static const char* kArchs[] = {"LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM"};
    bool known_arch = c.architecture.empty();
    for (const char* a : kArchs) known_arch = known_arch || c.architecture == a;
    ADAMAS_CHECK(known_arch && (c.model_type == "llama" || c.model_type == "mistral" ||
                                c.model_type == "qwen2"),
                 "{}: unsupported architecture '{}' (model_type '{}'): expected LlamaForCausalLM "
                 "(llama), MistralForCausalLM (mistral) or Qwen2ForCausalLM (qwen2)",
                 source, c.architecture, c.model_type);
    if (c.architecture.empty())
      c.architecture = c.model_type == "qwen2"     ? "Qwen2ForCausalLM"
                       : c.model_type == "mistral" ? "MistralForCausalLM"
                                                   : "LlamaForCausalLM";
    const std::string act = get_or<std::string>(j, "hidden_act", "silu");
    ADAMAS_CHECK(act == "silu", "{}: unsupported hidden_act '{}': expected silu", source, act);
    c.vocab_size = get_int(j, source, "vocab_size");
    c.hidden_size = get_int(j, source, "hidden_size");
    c.intermediate_size = get_int(j, source, "intermediate_size");
    c.num_layers = get_int(j, source, "num_hidden_layers");
    c.num_heads = get_int(j, source, "num_attention_heads");
    c.num_kv_heads = get_or<int>(j, "num_key_value_heads", c.num_heads);
    c.head_dim = get_or<int>(j, "head_dim", c.num_heads > 0 ? c.hidden_size / c.num_heads : 0);
    c.rms_norm_eps = static_cast<float>(get_or<double>(j, "rms_norm_eps", 1e-6));
    c.rope = parse_rope(j, source);
    c.max_position_embeddings = get_or<int>(j, "max_position_embeddings", 0);
    c.tie_word_embeddings = get_or<bool>(j, "tie_word_embeddings", false);
    if (c.model_type == "qwen2") {
      c.qkv_bias = true;
      if (get_or<bool>(j, "use_sliding_window", false))
        c.sliding_window = get_or<int>(j, "sliding_window", 0);
    } else {
      c.qkv_bias = c.o_bias = get_or<bool>(j, "attention_bias", false);
      c.mlp_bias = get_or<bool>(j, "mlp_bias", false);
      if (c.model_type == "mistral") c.sliding_window = get_or<int>(j, "sliding_window", 0);
    }
    c.bos_token_id = get_or<int>(j, "bos_token_id", -1);
    if (j.contains("eos_token_id")) c.eos_token_ids = id_list(j["eos_token_id"]);
    c.dtype = get_or<std::string>(j, "torch_dtype", get_or<std::string>(j, "dtype", ""));
  } catch (const json::exception& e) {
    throw Error(fmt::format("{}: malformed field: {}", source, e.what()));
  }
  c.validate();
  return c;
}

ModelConfig load_config(const std::filesystem::path& dir) {
  const auto path = dir / "config.json";
  ADAMAS_CHECK(std::filesystem::exists(path),
               "{} not found (is --model a Hugging Face model "
               "directory?)",
               path.string());
  ModelConfig c = parse_config(read_file(path), path.string());
  const auto gen = dir / "generation_config.json";
  if (std::filesystem::exists(gen)) {
    try {
      const json g = json::parse(read_file(gen));
      if (g.contains("eos_token_id")) {
        for (int id : id_list(g["eos_token_id"]))
          if (std::find(c.eos_token_ids.begin(), c.eos_token_ids.end(), id) ==
              c.eos_token_ids.end())
            c.eos_token_ids.push_back(id);
      }
    } catch (const json::exception&) {
      // generation_config.json is optional metadata; a broken one does not stop loading.
    }
  }
  return c;
}

}  // namespace adamas::model
