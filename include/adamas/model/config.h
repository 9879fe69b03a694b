// Hugging Face config.json of a Llama-family causal LM (Llama 1/2/3, Mistral, Qwen2), reduced to
// what the runtime needs. Unsupported architectures or RoPE types throw adamas::Error naming them.
// Integer fields are read as 64-bit and range-checked (never wrapped): num_hidden_layers and the
// head counts in [1, 2^16], hidden_size and intermediate_size in [1, 2^20], vocab_size in
// [1, 2^24], max_position_embeddings, sliding_window and token ids at most 2^31-1; rope_theta,
// RoPE factors and rms_norm_eps must be finite and > 0.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace adamas::model {

enum class RopeType { kDefault, kLinear, kLlama3 };

struct RopeConfig {
  double theta = 10000.0;
  RopeType type = RopeType::kDefault;
  double factor = 1.0;  // linear and llama3
  // llama3 only (HF names): wavelengths above original_max / low_freq_factor are divided by
  // `factor`, those below original_max / high_freq_factor kept, the band between interpolated.
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  int original_max_position_embeddings = 8192;
};

struct ModelConfig {
  std::string architecture;  // e.g. "LlamaForCausalLM"
  std::string model_type;    // llama | mistral | qwen2
  int vocab_size = 0;
  int hidden_size = 0;
  int intermediate_size = 0;
  int num_layers = 0;
  int num_heads = 0;
  int num_kv_heads = 0;
  int head_dim = 0;  // config's head_dim, else hidden_size / num_heads
  float rms_norm_eps = 1e-6f;
  RopeConfig rope;
  int max_position_embeddings = 0;
  bool tie_word_embeddings = false;
  bool qkv_bias = false;   // Qwen2 always; Llama's attention_bias
  bool o_bias = false;     // Llama's attention_bias also biases o_proj (Qwen2 does not)
  bool mlp_bias = false;   // Llama's mlp_bias
  int sliding_window = 0;  // Mistral/Qwen2 when enabled; 0 = none (not implemented beyond it)
  int bos_token_id = -1;
  std::vector<int> eos_token_ids;
  std::string dtype;  // torch_dtype / dtype as written, informational

  void validate() const;  // throws adamas::Error naming the field
  std::string describe() const;
};

// Parses config.json text; `source` names the file in error messages.
ModelConfig parse_config(std::string_view json_text, std::string_view source = "config.json");
// Reads DIR/config.json (and eos ids from DIR/generation_config.json when present).
ModelConfig load_config(const std::filesystem::path& dir);

}  // namespace adamas::model
