#include "demo_command.h"

#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <memory>
#include <random>

#include "adamas/model/llama.h"
#include "adamas/model/tokenizer.h"
#include "eval/common.h"
#include "flag_checks.h"
#include "passkey.h"
#include "progress.h"

namespace adamas::cli {

int run_demo(const DemoOptions& o) {
  using clock = std::chrono::steady_clock;
  const eval::DeviceChoice device = eval::choose_device(o.device);
  std::vector<PolicyConfig> policies;
  for (const std::string& spec : o.policies) policies.push_back(parse_policy(spec));
  const bool cuda = device.device == model::Device::kCuda;
  auto model = model::LlamaModel::load(o.model);
  auto tok = model::load_tokenizer(o.model);
  std::mt19937 rng(o.seed);
  const int key = o.key > 0 ? o.key : std::uniform_int_distribution<int>(10000, 99999)(rng);
  const PasskeyPrompt prompt = make_passkey_prompt(*tok, o.context, o.depth, key);
  const int n = static_cast<int>(prompt.ids.size());
  fmt::print("adamas demo: passkey retrieval with {} ({})\n", o.model, model->config().describe());
  fmt::print(
      "prompt: {} tokens, key {} after {} of {} filler lines (depth {:.0f}%), "
      "then the question\n",
      n, key, prompt.needle_line, prompt.filler_lines, 100 * o.depth);
  fmt::print("{}\n", device.describe());

  model::RuntimeOptions ro;
  ro.device = device.device;
  ro.any_policy = true;  // one prefill, then every policy decodes from the same cache
  ro.max_tokens = n + 16;
  ro.page_size = o.page_size;
  ro.threads = o.threads;
  model::Session session(*model, ro);
  const SeqId seq = session.add_sequence();
  const int vocab = model->config().vocab_size;
  std::vector<float> logits(vocab);
  const auto t0 = clock::now();
  {
    Progress progress("prefill (dense)", n);
    session.prefill(seq, prompt.ids, logits.data(), false,
                    [&](int done, int) { progress.update(done); });
  }
  const double prefill_s = std::chrono::duration<double>(clock::now() - t0).count();
  fmt::print("prefill: {:.1f}s ({:.0f} tokens/s)\n\n", prefill_s, n / prefill_s);
  const int32_t first =
      static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());

  // The GPU's attention stages are not timed apart from the step: its rows give the step only.
  size_t width = 44;  // the policy column fits the longest description
  for (PolicyConfig pc : policies) {
    if (pc.kind != PolicyKind::kFull) pc.budget = o.budget;
    width = std::max(width, pc.describe().size());
  }
  fmt::print("{:<{}} {:<10} {:>7} {:>13} {:>13}\n", "policy (decode steps)", width, "answer",
             "correct", "ms/token", cuda ? "" : "attention ms");
  for (PolicyConfig pc : policies) {
    if (pc.kind != PolicyKind::kFull) pc.budget = o.budget;
    const std::string why = model::unsupported_reason(device.device, pc);
    if (!why.empty()) {
      fmt::print("{:<{}} skipped: {}\n", pc.describe(), width, why);
      continue;
    }
    session.truncate(seq, n);
    session.set_policy(pc);
    const StageTimes before = session.attention_times();
    std::vector<int32_t> answer{first};
    const auto start = clock::now();
    const int steps = 6;  // " " + 5 digits, and a token to spare
    for (int s = 0; s < steps; ++s) {
      session.decode(std::span<const SeqId>(&seq, 1), std::span<const int32_t>(&answer.back(), 1),
                     logits.data());
      answer.push_back(
          static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin()));
    }
    const double ms = 1e3 * std::chrono::duration<double>(clock::now() - start).count() / steps;
    const double attn_ms = 1e3 * (session.attention_times().wall - before.wall) / steps;
    std::string text = tok->decode(answer);
    text.erase(0, text.find_first_not_of(" \t"));
    text = text.substr(0, text.find_first_of("\n\t"));
    const bool ok = text.rfind(std::to_string(key), 0) == 0;
    fmt::print("{:<{}} {:<10} {:>7} {:>13.1f} {:>13}\n", pc.describe(), width, text.substr(0, 10),
               ok ? "yes" : "NO", ms, cuda ? "" : fmt::format("{:.2f}", attn_ms));
  }
  fmt::print(
      "\nThe prefill is dense for every policy; each row decodes the answer from the same "
      "cache. Sparse rows attend to {} of {} tokens in layers ≥ {}.\n",
      o.budget, n, parse_policy("adamas").dense_layers);
  return 0;
}

void add_demo_command(CLI::App& app, int& status) {
  auto o = std::make_shared<DemoOptions>();
  CLI::App* cmd = app.add_subcommand(
      "demo", "Passkey retrieval with the shipped model: full attention vs sparse policies");
  cmd->add_option("--model", o->model, "model directory");
  cmd->add_option("--context", o->context, "prompt + answer length (tokens)")
      ->check(positive(kMaxTokens));
  cmd->add_option("--depth", o->depth, "needle position in the filler, 0..1")
      ->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--key", o->key, "the 5-digit pass key (default: random)")
      ->check(CLI::Range(10000, 99999));
  cmd->add_option("--seed", o->seed, "seed for the random key");
  cmd->add_option("--budget", o->budget, "token budget of the sparse policies")
      ->check(positive(kMaxTokens));
  cmd->add_option("--policies", o->policies, "policy specs")->delimiter(';');
  cmd->add_option("--page-size", o->page_size, "KV cache page size (Quest's page; its paper: 16)")
      ->check(CLI::Range(1, 65536));
  cmd->add_option("--threads", o->threads, "threads (default: all cores)")->check(threads_range());
  cmd->add_option("--device", o->device,
                  "cpu, cuda or auto (cuda when usable); policies cuda cannot run are skipped");
  cmd->callback([o, &status] { status = run_demo(*o); });
}

}  // namespace adamas::cli
