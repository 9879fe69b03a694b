// Selection quality on real attention: queries and keys captured from decode steps of the model
// (at the end of passkey prompts and inside held-out text), then, per layer and query head, for
// every policy (and ablation) × budget: recall of the exact top-k (the oracle set with the same
// budget semantics: the budget − 1 highest-scoring past keys plus the current token), attention
// mass captured (share of the dense softmax on the selected keys) and the relative L2 error of
// the attention output against dense attention. Policies are evaluated with dense_layers = 0
// so that every layer is measured; summaries average the layers the model runs sparse.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "../ablation_policies.h"
#include "adamas/model/llama.h"
#include "adamas/model/tokenizer.h"
#include "common.h"

namespace adamas::eval {

// Post-RoPE queries and keys/values (as stored in the f16 cache) of `steps` decode steps.
struct Capture {
  std::string kind;    // "passkey" or "text"
  std::string source;  // e.g. "passkey L=8192 depth=0.25"
  int prompt = 0;      // tokens before the first captured step; step s attends prompt + s + 1
  int steps = 0;
  int layers = 0, kv_heads = 0, heads = 0, head_dim = 0;
  std::vector<float> k, v;  // [layers][prompt + steps][kv_heads][head_dim]
  std::vector<float> q;     // [steps][layers][heads][head_dim]
  const float* keys(int layer) const {
    return k.data() + size_t(layer) * (prompt + steps) * kv_heads * head_dim;
  }
  const float* values(int layer) const {
    return v.data() + size_t(layer) * (prompt + steps) * kv_heads * head_dim;
  }
  const float* query(int step, int layer) const {
    return q.data() + (size_t(step) * layers + layer) * heads * head_dim;
  }
};

// Prefills `ids` densely, then decodes `steps` tokens with full attention, capturing: greedy
// continuation when `greedy` (the passkey answer), else the next ids of `ids` after `prompt`.
Capture capture_decode(const model::LlamaModel& model, std::span<const int32_t> ids, int prompt,
                       int steps, bool greedy, int threads = 1);

struct RecallRow {
  std::string kind;    // passkey | text
  std::string policy;  // spec as given
  int budget = 0;
  int layer = 0, head = 0;
  int queries = 0;
  double recall = 0, mass = 0, error = 0;  // means over the queries
};

// Bucket occupancy of the paper's 2-bit thresholds {−10, 0, 10} on the Hadamard-transformed
// vectors, per layer: the share of elements in each bucket and their RMS.
struct BucketRow {
  std::string kind;  // passkey | text
  int layer = 0;
  std::string vector;  // key | query
  double share[4] = {0, 0, 0, 0};
  double rms = 0;
  int64_t elements = 0;
};

struct RecallResult {
  std::vector<RecallRow> rows;
  std::vector<BucketRow> buckets;
  std::vector<std::string> sources;
};

// Evaluates every policy (not `full`) × budget on the captures and appends to `result`.
void evaluate_captures(const std::vector<const Capture*>& captures,
                       const std::vector<std::string>& policies, const std::vector<int>& budgets,
                       int page_size, RecallResult& result, const ProgressFn& progress = {});

struct RecallOptions {
  std::vector<int> lengths{8192};          // passkey prompts
  std::vector<double> depths{0.25, 0.75};  // one prompt per length × depth
  int text_docs = 2;                       // held-out windows
  int text_tokens = 4096;                  // tokens prefilled per held-out window
  std::filesystem::path text = kDefaultHeldout;
  int steps = 4;  // decode steps captured per source
  std::vector<std::string> policies = cli::ablation_policies();
  std::vector<int> budgets{16, 32, 64, 128, 256, 512, 1024};
  int page_size = 16;
  int threads = 1;  // per capture job
  int jobs = 1;
  unsigned seed = 2026;
};

RecallResult run_recall_eval(const model::LlamaModel& model, const model::Tokenizer& tok,
                             const RecallOptions& options, const ProgressFn& progress = {});

}  // namespace adamas::eval
