// `adamas inspect`: what a Hugging Face checkpoint holds (architecture, sizes, tensor dtypes,
// tokenizer) and what it will cost to run (weights, KV cache per token).
#pragma once

#include <string>

namespace CLI {
class App;
}

namespace adamas::cli {

void add_inspect_command(CLI::App& app, int& status);
int run_inspect(const std::string& model_dir, bool list_tensors);

}  // namespace adamas::cli
