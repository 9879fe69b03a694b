#include "inspect_command.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <map>
#include <memory>

#include "adamas/common/error.h"
#include "adamas/model/llama.h"
#include "adamas/model/safetensors.h"
#include "adamas/model/tokenizer.h"

namespace adamas::cli {

int run_inspect(const std::string& dir, bool list_tensors) {
  const model::ModelConfig c = model::load_config(dir);
  fmt::print("model:       {}\n", dir);
  fmt::print("config:      {}\n", c.describe());
  fmt::print("dtype:       {} (config)\n", c.dtype.empty() ? "?" : c.dtype);
  auto store = std::make_shared<const model::TensorStore>(dir);
  std::map<std::string, std::pair<int64_t, size_t>> by_type;  // dtype → (params, bytes)
  int64_t params = 0;
  for (const auto& name : store->names()) {
    const auto* t = store->find(name);
    by_type[t->type_name].first += t->numel();
    by_type[t->type_name].second += t->bytes;
    params += t->numel();
    if (list_tensors) fmt::print("  {:<56} {:<5} {}\n", name, t->type_name, t->shape_str());
  }
  fmt::print("files:       {} safetensors file(s)\n", store->files().size());
  fmt::print("tensors:     {} ({:.2f} M parameters)\n", store->names().size(), params / 1e6);
  for (const auto& [type, pb] : by_type)
    fmt::print("  {:<5} {:>12} parameters, {:8.1f} MiB\n", type, pb.first, pb.second / 1048576.0);
  // Loading the weights checks every tensor's presence and shape.
  const model::ModelWeights w = model::load_weights(c, store);
  fmt::print("weights:     all {} layers present and well-shaped ({:.1f} MiB used)\n", c.num_layers,
             w.bytes / 1048576.0);
  const auto t0 = std::chrono::steady_clock::now();
  model::check_weights_finite(w);  // what every load does: its cost, shown
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  fmt::print("finite:      every weight (checked in {:.3f} s, {:.1f} GB/s)\n", secs,
             w.bytes / std::max(secs, 1e-9) / 1e9);
  const double kv_per_token = 2.0 * c.num_layers * c.num_kv_heads * c.head_dim * 2;
  fmt::print("KV cache:    {:.1f} KiB per token in f16 ({:.1f} MiB per 1K tokens)\n",
             kv_per_token / 1024, kv_per_token * 1024 / 1048576.0);
  if (!c.eos_token_ids.empty()) fmt::print("eos ids:     {}\n", fmt::join(c.eos_token_ids, ", "));
  try {
    auto tok = model::load_tokenizer(dir);
    fmt::print("tokenizer:   {}\n", tok->describe());
  } catch (const Error& e) {
    fmt::print("tokenizer:   none usable ({})\n", e.what());
  }
  return 0;
}

void add_inspect_command(CLI::App& app, int& status) {
  auto dir = std::make_shared<std::string>();
  auto list = std::make_shared<bool>(false);
  CLI::App* cmd = app.add_subcommand("inspect", "Describe a Hugging Face Llama-family checkpoint");
  cmd->add_option("--model", *dir, "model directory")->required();
  cmd->add_flag("--tensors", *list, "list every tensor");
  cmd->callback([dir, list, &status] { status = run_inspect(*dir, *list); });
}

}  // namespace adamas::cli
