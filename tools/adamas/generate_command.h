// `adamas generate`: run a Hugging Face Llama-family checkpoint on the CPU or the GPU (--device):
// prefill the prompt, then decode with the chosen attention policy, streaming the text.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace CLI {
class App;
}

namespace adamas::cli {

struct GenerateOptions {
  std::string model;
  std::string prompt;
  std::string prompt_file;
  std::string policy = "full";
  int budget = 0;         // > 0: overrides the policy's budget
  int dense_layers = -1;  // ≥ 0: overrides the policy's dense_layers
  int max_new_tokens = 128;
  float temperature = 0.0f;
  int top_k = 0;
  float top_p = 1.0f;
  uint64_t seed = 0;
  std::vector<int> stop_tokens;  // in addition to the model's eos ids
  bool ignore_eos = false;
  std::string kv_dtype = "f16";
  int page_size = 64;
  int prefill_chunk = 256;
  int threads = 0;
  bool no_bos = false;
  bool allow_beyond_context = false;
  std::string logits_json;       // empty: none
  std::string device = "auto";   // cpu | cuda | auto
  bool no_cuda_graphs = false;   // cuda: launch decode steps one kernel at a time
  bool gpu_f32_weights = false;  // cuda: every product in fp32 (weights upcast on upload)
};

void add_generate_command(CLI::App& app, int& status);
int run_generate(const GenerateOptions& options);

}  // namespace adamas::cli
