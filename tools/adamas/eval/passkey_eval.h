// Passkey retrieval (LongChat style, the shipped model's templates) over context lengths × needle
// depths × trials, for every policy × budget. Each prompt is prefilled once (dense); the first
// answer token comes from the prefill logits and every policy × budget greedily decodes the
// rest of the answer from the same cache. A trial is correct when the generated tokens equal
// the answer's (" " + 5 digits), which is what the model card's teacher-forced check counts.
#pragma once

#include <string>
#include <vector>

#include "adamas/model/llama.h"
#include "adamas/model/tokenizer.h"
#include "common.h"

namespace adamas::eval {

struct PasskeyOptions {
  std::vector<int> lengths{1024, 2048, 4096, 8192};  // prompt + answer ≤ length
  std::vector<double> depths{0, 0.25, 0.5, 0.75, 1};
  int trials = 2;
  int keys = 1;  // needles: 1 = passkey; K ≥ 2 = multi-key (one queried at the depth, K − 1
                 // distractor key–value needles at random lines)
  std::vector<std::string> policies{"full", "oracle", "adamas", "quest", "streaming"};
  std::vector<int> budgets{16, 32, 64, 128, 256, 512, 1024, 2048, 4096};
  int page_size = 16;  // KV cache page = Quest's page (the Quest paper's 16)
  int threads = 1;     // per job
  int jobs = 1;        // prompts in flight
  unsigned seed = 2026;
  model::Device device = model::Device::kCpu;  // cuda: full and adamas only
};

struct PasskeyRow {
  int length = 0;         // the context length asked for
  int prompt_tokens = 0;  // tokens of the prompt
  double depth = 0;
  int trial = 0;
  int key = 0;         // the answer: the pass key, or the queried value of a multi-key prompt
  std::string policy;  // the spec as given
  int budget = 0;      // 0: full attention
  bool dense = false;  // budget ≥ every decode step's context: the same computation as full
  bool correct = false;
  int tokens_right = 0;  // leading answer tokens generated correctly (of 6)
  std::string answer;    // the generated text
  double prefill_s = 0;  // of this prompt (same for all its rows)
};

std::vector<PasskeyRow> run_passkey(const model::LlamaModel& model, const model::Tokenizer& tok,
                                    const PasskeyOptions& options, const ProgressFn& progress = {});

}  // namespace adamas::eval
