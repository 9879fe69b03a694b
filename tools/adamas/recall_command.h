// `adamas recall`: selection quality of every policy on synthetic attention data with planted
// relevant keys (no model needed): recall of the exact per-head top-k, attention mass captured,
// and relative error of the attention output against dense attention.
#pragma once

#include <string>
#include <vector>

#include "ablation_policies.h"

namespace CLI {
class App;
}

namespace adamas::cli {

struct RecallOptions {
  int context = 8192;
  std::vector<int> budgets{64, 128, 256, 512};
  int heads = 32;
  int kv_heads = 8;
  int head_dim = 128;
  int page_size = 16;
  int steps = 8;           // query draws averaged
  double agreement = 0.5;  // share of a query head's direction common to its GQA group
  double relevant = 0.02;  // fraction of positions planted as relevant keys
  double boost = 6.0;      // logit boost of a relevant key for the heads it is relevant to
  int threads = 0;
  std::vector<std::string> policies = ablation_policies();
  std::string csv = "adamas_recall.csv";
  unsigned seed = 42;
};

void add_recall_command(CLI::App& app, int& status);
int run_recall(const RecallOptions& options);

}  // namespace adamas::cli
