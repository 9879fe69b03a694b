#include "generate_command.h"

#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "adamas/common/error.h"
#include "adamas/model/llama.h"
#include "adamas/model/sampler.h"
#include "adamas/model/tokenizer.h"
#include "eval/common.h"
#include "flag_checks.h"
#include "progress.h"
#include "result_file.h"

namespace adamas::cli {

int run_generate(const GenerateOptions& o) {
  using clock = std::chrono::steady_clock;
  // Every option the device constrains is checked before anything is loaded.
  const eval::DeviceChoice device = eval::choose_device(o.device);
  model::RuntimeOptions ro;
  ro.device = device.device;
  ro.policy = parse_policy(o.policy);
  if (o.budget > 0) ro.policy.budget = o.budget;
  if (o.dense_layers >= 0) ro.policy.dense_layers = o.dense_layers;
  eval::check_policy_on_device(ro.device, ro.policy, o.policy, "--policy");
  ro.kv_dtype = parse_dtype(o.kv_dtype);
  eval::check_kv_dtype_on_device(ro.device, ro.kv_dtype, "--kv-dtype");
  ro.page_size = o.page_size;
  ro.prefill_chunk = o.prefill_chunk;
  ro.threads = o.threads;
  ro.cuda_graphs = !o.no_cuda_graphs;
  ro.gpu_f32_weights = o.gpu_f32_weights;

  const std::string prompt =
      o.prompt_file.empty() ? o.prompt : read_input_file(o.prompt_file, "--prompt-file");
  // Opened before the work: a bad path fails now, and the file is written whole at the end.
  std::unique_ptr<ResultFile> json_out;
  if (!o.logits_json.empty())
    json_out = std::make_unique<ResultFile>(o.logits_json, "--logits-json");
  const auto t_load = clock::now();
  auto model = model::LlamaModel::load(o.model);
  auto tokenizer = model::load_tokenizer(o.model);
  const auto& mc = model->config();
  fmt::print(stderr, "model: {}\n", mc.describe());
  fmt::print(stderr, "tokenizer: {}\n", tokenizer->describe());
  fmt::print(stderr, "{}\n", device.describe());

  std::vector<int32_t> ids = tokenizer->encode_prompt(prompt, /*with_bos=*/!o.no_bos);
  if (ids.empty()) throw Error("the prompt encodes to no tokens");

  ro.allow_beyond_context = o.allow_beyond_context;
  const int context = mc.max_position_embeddings;
  if (context > 0 && !o.allow_beyond_context && static_cast<int64_t>(ids.size()) > context)
    throw Error(fmt::format(
        "the prompt has {} tokens, beyond the model's max_position_embeddings ({}): shorten it, "
        "or pass --allow-beyond-context to run past the trained context anyway",
        ids.size(), context));
  int64_t tokens = static_cast<int64_t>(ids.size()) + o.max_new_tokens + 1;
  if (context > 0 && !o.allow_beyond_context) tokens = std::min<int64_t>(tokens, context + 1);
  ro.max_tokens = static_cast<int>(std::min<int64_t>(tokens, std::numeric_limits<int>::max()));
  model::Session session(*model, ro);
  fmt::print(stderr, "policy: {}; KV cache {} ({:.1f} MiB); {} prompt tokens; loaded in {:.2f}s\n",
             ro.policy.describe(), o.kv_dtype, session.cache_bytes() / 1048576.0, ids.size(),
             std::chrono::duration<double>(clock::now() - t_load).count());

  model::GenerationConfig gc;
  gc.max_new_tokens = o.max_new_tokens;
  gc.sampling = {o.temperature, o.top_k, o.top_p, o.seed};
  gc.stop_tokens.assign(o.stop_tokens.begin(), o.stop_tokens.end());
  if (!o.ignore_eos) {
    for (int id : mc.eos_token_ids) gc.stop_tokens.push_back(id);
    if (tokenizer->eos_id() >= 0) gc.stop_tokens.push_back(tokenizer->eos_id());
  }

  const size_t ctx = std::min<size_t>(ids.size(), 4);
  model::TokenStreamer streamer(*tokenizer,
                                std::span<const int32_t>(ids).subspan(ids.size() - ctx));
  auto progress = std::make_unique<Progress>("prefill", static_cast<int64_t>(ids.size()));
  bool first = true;
  std::vector<float> prompt_logits;
  std::vector<int32_t> generated;
  const auto stats = model::generate(
      session, ids, gc,
      [&](int32_t id) {
        generated.push_back(id);
        if (first) {  // the prefill is over: close the bar before streaming text
          progress.reset();
          first = false;
        }
        if (std::find(gc.stop_tokens.begin(), gc.stop_tokens.end(), id) == gc.stop_tokens.end()) {
          fmt::print("{}", streamer.push(id));
          std::fflush(stdout);
        }
        return true;
      },
      [&](int done, int) { progress->update(done); }, json_out ? &prompt_logits : nullptr);
  progress.reset();
  fmt::print("{}\n", streamer.finish());
  if (json_out) {
    nlohmann::json j;
    j["model"] = o.model;
    j["policy"] = ro.policy.describe();
    j["device"] = std::string(model::device_name(ro.device));
    j["prompt_ids"] = ids;
    j["prompt_last_logits"] = prompt_logits;
    j["generated_ids"] = generated;
    json_out->out() << j.dump() << "\n";
    json_out->commit();
    fmt::print(stderr, "wrote {}\n", o.logits_json);
  }

  fmt::print(stderr,
             "\nprefill: {} tokens in {:.3f}s ({:.1f} tokens/s)\n"
             "decode:  {} tokens in {:.3f}s ({:.2f} tokens/s, {:.1f} ms/token){}\n",
             stats.prompt_tokens, stats.prefill_seconds,
             stats.prompt_tokens / std::max(stats.prefill_seconds, 1e-9), stats.new_tokens,
             stats.decode_seconds, stats.decode_steps / std::max(stats.decode_seconds, 1e-9),
             1e3 * stats.decode_seconds / std::max(stats.decode_steps, 1),
             stats.stopped ? ", stopped at a stop token" : "");
  if (stats.context_full)
    fmt::print(stderr,
               "stopped at the model's context ({} tokens, max_position_embeddings); "
               "--allow-beyond-context goes on past it\n",
               context);
  // The GPU times the step, not its attention stages (they stay zero there).
  if (ro.device == model::Device::kCpu) {
    const auto& t = session.attention_times();
    fmt::print(stderr,
               "decode attention: {:.3f}s (encode {:.3f}, estimate {:.3f}, top-k {:.3f}, "
               "attention {:.3f})\n",
               t.wall, t.encode, t.estimate, t.topk, t.attention);
  }
  return 0;
}

void add_generate_command(CLI::App& app, int& status) {
  auto o = std::make_shared<GenerateOptions>();
  CLI::App* cmd = app.add_subcommand(
      "generate",
      "Generate text with a Hugging Face Llama/Mistral/Qwen2 checkpoint on the CPU or the GPU");
  cmd->add_option("--model", o->model, "model directory (config.json, *.safetensors, tokenizer)")
      ->required();
  auto* p = cmd->add_option("--prompt", o->prompt, "prompt text");
  auto* pf = cmd->add_option("--prompt-file", o->prompt_file, "file holding the prompt");
  p->excludes(pf);
  cmd->add_option(
      "--policy", o->policy,
      "decode attention policy: full, oracle, adamas, quest, streaming[:key=value,...]");
  cmd->add_option("--budget", o->budget, "token budget of sparse policies (overrides the spec)")
      ->check(positive(kMaxTokens));
  cmd->add_option("--dense-layers", o->dense_layers, "leading layers that stay dense")
      ->check(non_negative());
  cmd->add_option("--max-new-tokens", o->max_new_tokens, "tokens to generate")
      ->check(non_negative(kMaxTokens));
  cmd->add_option("--temperature", o->temperature, "0 = greedy")->check(CLI::Range(0.0, 1000.0));
  cmd->add_option("--top-k", o->top_k, "keep the k most likely tokens (0 = all)")
      ->check(non_negative());
  cmd->add_option("--top-p", o->top_p, "nucleus sampling threshold")->check(unit_interval());
  cmd->add_option("--seed", o->seed, "sampling seed");
  cmd->add_option("--stop-token", o->stop_tokens, "extra stop token ids")
      ->delimiter(',')
      ->check(non_negative());
  cmd->add_flag("--ignore-eos", o->ignore_eos, "do not stop at the model's eos tokens");
  cmd->add_option("--kv-dtype", o->kv_dtype, "KV cache dtype: f16, bf16 or f32 (cpu only)");
  cmd->add_option("--device", o->device,
                  "cpu, cuda or auto (cuda when usable); cuda runs full and adamas only");
  cmd->add_option("--page-size", o->page_size, "KV cache page size (tokens)")
      ->check(positive(kMaxPageSize));
  cmd->add_option("--prefill-chunk", o->prefill_chunk, "prompt tokens per prefill step")
      ->check(positive(kMaxTokens));
  cmd->add_option("--threads", o->threads, "threads (default: all cores)")->check(threads_range());
  cmd->add_flag("--no-bos", o->no_bos, "do not prepend the BOS token");
  cmd->add_option("--logits-json", o->logits_json,
                  "write the prompt's ids, its last-position logits and the generated ids as "
                  "JSON to this file (peer checks)");
  cmd->add_flag("--allow-beyond-context", o->allow_beyond_context,
                "let prompt + generation run past the model's max_position_embeddings (RoPE "
                "beyond the trained context: output of unknown quality)");
  cmd->add_flag("--no-cuda-graphs", o->no_cuda_graphs,
                "cuda: launch each decode step's kernels one by one instead of replaying a graph");
  cmd->add_flag("--gpu-f32-weights", o->gpu_f32_weights,
                "cuda: upcast the weights to f32 and multiply in fp32 (default: bf16/f16 as "
                "stored, f32 checkpoints as bf16)");
  cmd->callback([o, p, pf, &status] {
    if (p->count() == 0 && pf->count() == 0) throw Error("give --prompt TEXT or --prompt-file F");
    status = run_generate(*o);
  });
}

}  // namespace adamas::cli
