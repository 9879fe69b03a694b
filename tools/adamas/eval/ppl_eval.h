// Perplexity of held-out text in decode mode (the paper's PG-19 test): per document, a short
// dense prefix is prefilled once, then every token after it is fed one decode step at a time
// through the policy's (sparse) attention, teacher-forced, and the next token is scored. Every
// policy × budget runs over the same windows; the per-position curve is bucketed.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "adamas/model/llama.h"
#include "adamas/model/tokenizer.h"
#include "common.h"

namespace adamas::eval {

struct PplOptions {
  std::filesystem::path text = kDefaultHeldout;  // corpus format (common.h read_documents)
  int docs = 2;       // the first `docs` documents long enough for a window
  int skip_docs = 0;  // ... after skipping this many long-enough ones (disjoint dev / test splits)
  int prefix = 256;   // dense prefill
  int tokens = 2048;  // decode steps (tokens scored) per document
  int bucket = 256;   // positions per bucket of the curve
  std::vector<std::string> policies{"full", "oracle", "adamas", "quest", "streaming"};
  std::vector<int> budgets{16, 32, 64, 128, 256, 512, 1024};
  int page_size = 16;
  int threads = 1;                             // per job
  int jobs = 1;                                // (document, policy × budget) runs in flight
  model::Device device = model::Device::kCpu;  // cuda: full and adamas only
};

struct PplRow {
  std::string policy;
  int budget = 0;      // 0: full attention
  bool dense = false;  // budget ≥ every context of the window: the same computation as full
  int docs = 0;
  int64_t tokens = 0;  // tokens scored
  double nll = 0;      // mean, nats
  double ppl = 0;
  double seconds = 0;  // decode time summed over documents (0 when copied from full)
};

struct PplCurveRow {
  std::string policy;
  int budget = 0;
  int begin = 0, end = 0;  // positions [begin, end) of the scored tokens
  int64_t tokens = 0;
  double nll = 0, ppl = 0;
};

struct PplResult {
  std::vector<PplRow> rows;
  std::vector<PplCurveRow> curve;
  std::vector<std::string> doc_names;  // first line of each document used (for the record)
  int window = 0;                      // prefix + tokens + 1 ids per document
};

PplResult run_ppl(const model::LlamaModel& model, const model::Tokenizer& tok,
                  const PplOptions& options, const ProgressFn& progress = {});

}  // namespace adamas::eval
