// Next-token sampling and the generation loop (prefill, then decode until a stop token or the
// token limit, each token handed to a callback as soon as it is chosen).
#pragma once

#include <cstdint>
#include <functional>
#include <random>
#include <span>
#include <vector>

#include "adamas/model/llama.h"

namespace adamas::model {

struct SamplingConfig {
  float temperature = 0.0f;  // 0: greedy (argmax, ties to the lowest id)
  int top_k = 0;             // 0: no top-k cut
  float top_p = 1.0f;        // nucleus: smallest set of tokens with probability ≥ top_p
  uint64_t seed = 0;
  void validate() const;
};

class Sampler {
 public:
  explicit Sampler(SamplingConfig config);
  // Logits may hold −Inf (masked tokens), never NaN or +Inf (adamas::Error), and not only −Inf.
  int32_t sample(std::span<const float> logits);

 private:
  SamplingConfig config_;
  std::mt19937_64 rng_;
  std::vector<std::pair<float, int32_t>> cand_;
};

struct GenerationConfig {
  int max_new_tokens = 128;
  SamplingConfig sampling;
  std::vector<int32_t> stop_tokens;  // generation ends after producing one of these
};

struct GenerationStats {
  int prompt_tokens = 0;
  int new_tokens = 0;    // including a final stop token
  bool stopped = false;  // by a stop token (or the callback), not by the token limit
  // At the model's max_position_embeddings (unless the session allows going beyond it).
  bool context_full = false;
  double prefill_seconds = 0;
  double decode_seconds = 0;  // the decode steps (new_tokens − 1 of them)
  int decode_steps = 0;
  int32_t last_token = -1;
};

// Prefills `prompt` into a new sequence of `session`, then samples up to max_new_tokens tokens.
// on_token(id) runs for each new token as soon as it is sampled; returning false stops early.
// Generation also stops when the next step would pass the model's context (context_full). The
// sequence is removed at the end.
// prompt_logits, when given, receives the prompt's last-position logits (peer checks).
GenerationStats generate(Session& session, std::span<const int32_t> prompt,
                         const GenerationConfig& config,
                         const std::function<bool(int32_t)>& on_token,
                         const std::function<void(int, int)>& prefill_progress = {},
                         std::vector<float>* prompt_logits = nullptr);

}  // namespace adamas::model
