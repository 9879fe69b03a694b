#include "bench_e2e_command.h"

#include <CLI/CLI.hpp>
#include <memory>

#include "bench_e2e.h"
#include "flag_checks.h"

namespace adamas::cli {

void add_bench_e2e_command(CLI::App& app, int& status) {
  auto o = std::make_shared<BenchE2eOptions>();
  CLI::App* cmd = app.add_subcommand(
      "bench-e2e",
      "End-to-end tokens/s of a model through the Session (prefill and batched decode per "
      "policy), beside each decode step's byte floor; CSV to --csv");
  cmd->add_option("--model", o->model, "Hugging Face checkpoint directory")->required();
  cmd->add_option("--device", o->device, "cpu, cuda or auto (cuda when usable)")
      ->capture_default_str();
  cmd->add_option("--contexts", o->contexts, "context lengths, e.g. 8192,32K,131072")
      ->capture_default_str();
  cmd->add_option("--batches", o->batches, "batch sizes (sequences per decode step)")
      ->capture_default_str();
  cmd->add_option("--policies", o->policies,
                  "policy specs separated by ',' or ';' (e.g. full,adamas:gqa=shared); cuda runs "
                  "full and adamas")
      ->capture_default_str();
  cmd->add_option("--budget", o->budget,
                  "token budget of sparse policies (unless the spec names one)")
      ->capture_default_str();
  cmd->add_option("--dense-layers", o->dense_layers,
                  "leading dense layers of sparse policies (unless the spec names them)")
      ->capture_default_str();
  cmd->add_option("--decode-steps", o->decode_steps, "timed decode steps (after 3 warm-up steps)")
      ->capture_default_str();
  cmd->add_option("--prefill-chunk", o->prefill_chunk,
                  "prompt tokens per prefill step (default: 4096 on cuda, 256 on cpu)");
  cmd->add_option("--page-size", o->page_size, "KV cache page size (tokens)")
      ->capture_default_str();
  cmd->add_option("--kv-dtype", o->kv_dtype,
                  "KV cache dtype: f16, bf16 or f32 (cpu only); default bf16 on cuda, f16 on cpu");
  cmd->add_option("--seed", o->seed, "seed of the random prompts")->capture_default_str();
  cmd->add_option("--csv", o->csv, "CSV output file (written whole at the end)")
      ->capture_default_str();
  cmd->add_option("--max-kv-gib", o->max_kv_gib,
                  "skip points whose KV cache would exceed this (default: 100 on cuda, 8 on cpu)");
  cmd->add_option("--threads", o->threads, "cpu threads (default: all cores)")
      ->check(threads_range());
  cmd->add_flag("--gpu-f32-weights", o->gpu_f32_weights,
                "cuda: keep f32 checkpoints in f32 (default: converted to bf16)");
  cmd->add_flag("!--no-cuda-graphs", o->cuda_graphs, "cuda: launch decode steps one by one");
  cmd->add_flag("--profile", o->profile,
                "cuda: launch decode steps one by one and report the device time of their matrix "
                "products, attention and the rest (CUDA events)");
  cmd->callback([o, &status] {
    run_bench_e2e(*o);
    status = 0;
  });
}

}  // namespace adamas::cli
