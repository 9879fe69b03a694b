// `adamas eval passkey|ppl|recall`: the evaluation suite on a model (issue 6). Each prints its
// tables and writes CSV files under --out-dir; tools/eval/plot_eval.py draws the PNGs.
#pragma once

namespace CLI {
class App;
}

namespace adamas::cli {

void add_eval_command(CLI::App& app, int& status);

}  // namespace adamas::cli
