#include "adamas/model/config.h"

#include <fmt/format.h>

#include <cmath>
#include <cstdint>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common/check.h"
#include "model/json_depth.h"

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

// Upper bounds of the integer fields, far above any real model's, so that products such as
// num_attention_heads * head_dim and sizes derived from them fit an int.
constexpr int64_t kMaxCount = 1 << 16;  // num_hidden_layers, attention heads
constexpr int64_t kMaxWidth = 1 << 20;  // hidden_size, intermediate_size, head_dim
constexpr int64_t kMaxVocab = 1 << 24;  // vocab_size
constexpr int64_t kMaxInt = INT32_MAX;  // positions, window sizes, token ids

// An integer as 64 bits (nlohmann's get<int> would silently wrap 10^12), checked against [lo, hi].
int int_in_range(const json& v, std::string_view source, std::string_view key, int64_t lo,
                 int64_t hi) {
  ADAMAS_CHECK(v.is_number_integer(), "{}: field '{}' must be an integer, got {}", source, key,
               v.dump());
  // Unsigned values above INT64_MAX would wrap as int64: compare them as unsigned first.
  const bool in_range =
      (!v.is_number_unsigned() || v.get<uint64_t>() <= static_cast<uint64_t>(hi)) &&
      v.get<int64_t>() >= lo && v.get<int64_t>() <= hi;
  ADAMAS_CHECK(in_range, "{}: field '{}' must be an integer in [{}, {}], got {}", source, key, lo,
               hi, v.dump());
  return static_cast<int>(v.get<int64_t>());
}

// A required integer field.
int get_int(const json& j, std::string_view source, const char* key, int64_t lo, int64_t hi) {
  auto it = j.find(key);
  ADAMAS_CHECK(it != j.end() && !it->is_null(), "{}: missing field '{}'", source, key);
  return int_in_range(*it, source, key, lo, hi);
}

// An optional integer field (absent or null: `fallback`, not checked).
int get_int_or(const json& j, std::string_view source, const char* key, int fallback, int64_t lo,
               int64_t hi) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  return int_in_range(*it, source, key, lo, hi);
}

// An optional real field that must be finite and > 0 (rope_theta, factors, rms_norm_eps).
double get_positive_or(const json& j, std::string_view source, std::string_view what,
                       const char* key, double fallback) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  ADAMAS_CHECK(it->is_number(), "{}: {} must be a number, got {}", source, what, it->dump());
  const double v = it->get<double>();
  ADAMAS_CHECK(std::isfinite(v) && v > 0, "{}: {} must be a finite number > 0, got {}", source,
               what, it->dump());
  return v;
}

template <class T>
T get_or(const json& j, const char* key, T fallback) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  return it->get<T>();
}

// eos_token_id: one id or a list of them; an id that does not fit an int throws (-1 = none).
std::vector<int> id_list(const json& v, std::string_view source) {
  std::vector<int> out;
  if (v.is_number_integer()) out.push_back(int_in_range(v, source, "eos_token_id", -1, kMaxInt));
  if (v.is_array())
    for (const auto& x : v)
      if (x.is_number_integer())
        out.push_back(int_in_range(x, source, "eos_token_id", -1, kMaxInt));
  return out;
}

RopeConfig parse_rope(const json& j, std::string_view source) {
  RopeConfig r;
  r.theta = get_positive_or(j, source, "rope_theta", "rope_theta", 10000.0);
  // transformers 5 writes one "rope_parameters" object (rope_type, rope_theta, factor, ...);
  // earlier versions rope_theta beside a "rope_scaling" object (or null).
  auto it = j.find("rope_parameters");
  if (it != j.end() && it->is_object()) {
    r.theta = get_positive_or(*it, source, "rope_parameters.rope_theta", "rope_theta", r.theta);
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
  r.factor = get_positive_or(s, source, "rope_scaling.factor", "factor", 1.0);
  if (type == "linear") {
    r.type = RopeType::kLinear;
  } else if (type == "llama3") {
    r.type = RopeType::kLlama3;
    r.low_freq_factor =
        get_positive_or(s, source, "rope_scaling.low_freq_factor", "low_freq_factor", 1.0);
    r.high_freq_factor =
        get_positive_or(s, source, "rope_scaling.high_freq_factor", "high_freq_factor", 4.0);
    r.original_max_position_embeddings =
        get_int_or(s, source, "original_max_position_embeddings", 8192, 1, kMaxInt);
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
  auto in_range = [](int64_t v, const char* name, int64_t lo, int64_t hi) {
    ADAMAS_CHECK(v >= lo && v <= hi, "config: {} must be in [{}, {}], got {}", name, lo, hi, v);
  };
  in_range(vocab_size, "vocab_size", 1, kMaxVocab);
  in_range(hidden_size, "hidden_size", 1, kMaxWidth);
  in_range(intermediate_size, "intermediate_size", 1, kMaxWidth);
  in_range(num_layers, "num_hidden_layers", 1, kMaxCount);
  in_range(num_heads, "num_attention_heads", 1, kMaxCount);
  in_range(num_kv_heads, "num_key_value_heads", 1, kMaxCount);
  in_range(max_position_embeddings, "max_position_embeddings", 0, kMaxInt);
  in_range(sliding_window, "sliding_window", 0, kMaxInt);
  ADAMAS_CHECK(num_heads % num_kv_heads == 0,
               "config: num_attention_heads ({}) must be a multiple of num_key_value_heads ({})",
               num_heads, num_kv_heads);
  ADAMAS_CHECK(head_dim >= 16 && head_dim <= 256 && (head_dim & (head_dim - 1)) == 0,
               "config: head_dim must be a power of two in [16, 256] (the Hadamard transform "
               "needs it), got {}",
               head_dim);
  ADAMAS_CHECK(std::isfinite(rms_norm_eps) && rms_norm_eps > 0,
               "config: rms_norm_eps must be a finite number > 0, got {}", rms_norm_eps);
  ADAMAS_CHECK(std::isfinite(rope.theta) && rope.theta > 0,
               "config: rope_theta must be a finite number > 0, got {}", rope.theta);
  ADAMAS_CHECK(std::isfinite(rope.factor) && rope.factor > 0,
               "config: rope factor must be a finite number > 0, got {}", rope.factor);
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
  const json j = parse_json_object(text, source);
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
    c.vocab_size = get_int(j, source, "vocab_size", 1, kMaxVocab);
    c.hidden_size = get_int(j, source, "hidden_size", 1, kMaxWidth);
    c.intermediate_size = get_int(j, source, "intermediate_size", 1, kMaxWidth);
    c.num_layers = get_int(j, source, "num_hidden_layers", 1, kMaxCount);
    c.num_heads = get_int(j, source, "num_attention_heads", 1, kMaxCount);
    c.num_kv_heads = get_int_or(j, source, "num_key_value_heads", c.num_heads, 1, kMaxCount);
    if (j.contains("head_dim") && !j["head_dim"].is_null()) {
      c.head_dim = get_int(j, source, "head_dim", 1, kMaxWidth);  // validate() narrows it
    } else {
      // HF derives it by integer division, which would silently drop a remainder.
      ADAMAS_CHECK(c.hidden_size % c.num_heads == 0,
                   "{}: hidden_size ({}) must be a multiple of num_attention_heads ({}) when "
                   "head_dim is not given",
                   source, c.hidden_size, c.num_heads);
      c.head_dim = c.hidden_size / c.num_heads;
    }
    // Checked as a double: a tiny eps would round to 0 (or a huge one to inf) as a float.
    const double eps = get_positive_or(j, source, "rms_norm_eps", "rms_norm_eps", 1e-6);
    c.rms_norm_eps = static_cast<float>(eps);
    ADAMAS_CHECK(std::isfinite(c.rms_norm_eps) && c.rms_norm_eps > 0,
                 "{}: rms_norm_eps must be a finite number > 0 that fits a float, got {}", source,
                 eps);
    c.rope = parse_rope(j, source);
    c.max_position_embeddings = get_int_or(j, source, "max_position_embeddings", 0, 0, kMaxInt);
    c.tie_word_embeddings = get_or<bool>(j, "tie_word_embeddings", false);
    if (c.model_type == "qwen2") {
      c.qkv_bias = true;
      if (get_or<bool>(j, "use_sliding_window", false))
        c.sliding_window = get_int_or(j, source, "sliding_window", 0, 0, kMaxInt);
    } else {
      c.qkv_bias = c.o_bias = get_or<bool>(j, "attention_bias", false);
      c.mlp_bias = get_or<bool>(j, "mlp_bias", false);
      if (c.model_type == "mistral")
        c.sliding_window = get_int_or(j, source, "sliding_window", 0, 0, kMaxInt);
    }
    c.bos_token_id = get_int_or(j, source, "bos_token_id", -1, -1, kMaxInt);  // -1: none
    if (j.contains("eos_token_id")) c.eos_token_ids = id_list(j["eos_token_id"], source);
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
      const std::string text = read_file(gen);
      // Nested too deep counts as not JSON (ignored, below).
      const json g = json_depth(text) <= kMaxJsonDepth ? json::parse(text) : json();
      if (g.contains("eos_token_id")) {
        for (int id : id_list(g["eos_token_id"], gen.string()))
          if (std::find(c.eos_token_ids.begin(), c.eos_token_ids.end(), id) ==
              c.eos_token_ids.end())
            c.eos_token_ids.push_back(id);
      }
    } catch (const json::exception&) {
      // generation_config.json is optional metadata; one that is not JSON does not stop loading
      // (an eos id that does not fit an int does: dropping it would silently change generation).
    }
  }
  return c;
}

}  // namespace adamas::model
