// `adamas bench-e2e`: end-to-end tokens/s of a real model through the Session code path users run
// (the CPU or the CUDA runtime), for contexts × batch sizes × policies, beside the byte floor of a
// decode step (the bytes it must read ÷ the device's copy bandwidth).
//
// For each (context, batch): one Session holding `batch` sequences of `context` random token ids
// (uniform in [0, vocab), seeded), prefilled one after the other (the first one timed: tokens/s
// and TFLOP/s); then for each policy every sequence is truncated back to `context`, the policy
// set, 3 warm-up steps run and `decode_steps` batched steps timed (greedy argmax of the logits as
// the next tokens); the row holds the median step.
//
// The core lives here (library adamas_eval) so that the tests run the same code on a tiny grid;
// bench_e2e_command.cc only binds the flags.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "adamas/common/dtype.h"
#include "adamas/model/llama.h"
#include "adamas/policy/policy.h"

namespace adamas::cli {

// The flags as given: lists stay text so that every error names its flag.
struct BenchE2eOptions {
  std::string model;            // --model DIR (required)
  std::string device = "auto";  // --device cpu|cuda|auto
  std::string contexts = "8192,32768,131072";
  std::string batches = "1,16";
  std::string policies = "full,adamas";  // policy specs (parse_policy), ',' or ';' separated
  int budget = 256;                      // sparse policies' budget unless the spec names one
  int dense_layers = 2;                  // likewise
  int decode_steps = 32;                 // timed, after kWarmupSteps
  int prefill_chunk = 0;                 // 0: 4096 on cuda, 256 on cpu
  int page_size = 64;
  std::string kv_dtype;  // empty: bf16 on cuda, f16 on cpu
  uint64_t seed = 2026;
  std::string csv = "adamas_bench_e2e.csv";
  double max_kv_gib = 0;  // points whose KV cache would be larger are skipped; 0: 100 cuda, 8 cpu
  int threads = 0;        // cpu: ≤ 0 is OpenMP's default
  bool gpu_f32_weights = false;
  bool cuda_graphs = true;
  // cuda: launch steps eagerly and time their products and attention with events (a diagnostic:
  // without graphs the step itself is slower).
  bool profile = false;
};

inline constexpr int kWarmupSteps = 3;

struct BenchE2ePolicy {
  std::string label;  // the spec as given
  PolicyConfig config;
};

// The options resolved and checked: every flag (and the model's config.json) is validated here,
// before any work; errors name the flag and the allowed values.
struct BenchE2ePlan {
  BenchE2eOptions options;
  model::Device device = model::Device::kCpu;
  std::string device_line;  // "device: cuda", "device: cpu (auto: ...)"
  std::vector<int> contexts, batches;
  std::vector<BenchE2ePolicy> policies;
  PolicyConfig cache_policy;  // sets the cache's key-code layout (the adamas policies')
  DType kv_dtype = DType::kF16;
  int prefill_chunk = 256;
  double max_kv_gib = 8;
};

BenchE2ePlan plan_bench_e2e(const BenchE2eOptions& options);

// The bytes a decode step reads at best (the byte floor's numerator).
struct StepBytes {
  double weights = 0;  // every layer matrix + final norm + lm_head, in the dtype the device runs
  double kv = 0;       // K/V, key codes, page metadata: summed over the sequences and layers
};
// Weight bytes read once per decode step.
double decode_weight_bytes(const model::LlamaModel& model, model::Device device,
                           bool gpu_f32_weights);
// K/V bytes one sequence's decode step reads under `policy` when it attends `length` tokens
// (current included), summed over the layers.
double decode_kv_bytes(const model::ModelConfig& config, const PolicyConfig& policy, int length,
                       DType kv_dtype, int page_size);
// Exact FLOPs of prefilling `tokens` tokens from position 0 (one sequence): 2 × layer matrix
// parameters per token, causal attention 4 × head_dim × heads × (position + 1) per token and
// layer, and the LM head for the last token.
double prefill_flops(const model::LlamaModel& model, int tokens);

struct BenchE2eRow {
  int batch = 0, context = 0;
  std::string policy;  // label
  int budget = 0;      // 0: full attention
  int dense_layers = 0;
  double prefill_tok_s = 0, prefill_tflops = 0;  // of batch entry 0 (same on every policy's row)
  double prefill_x_sgemm = 0;                    // cpu: prefill FLOP/s / the host's sgemm rate
  double decode_ms = 0;                          // median step over all sequences
  double decode_tok_s = 0;                       // batch / step
  double weight_bytes = 0, kv_bytes = 0;         // per step (kv: mean over the timed steps)
  double floor_ms = 0;                           // (weight + kv bytes) / floor bandwidth
  double x_floor = 0;                            // decode_ms / floor_ms
  double speedup = 0;  // the full row's decode_ms / this one's; 0 without a full row
  // With --profile (cuda): device ms per timed step in the products, attention and the rest.
  bool profiled = false;
  double products_ms = 0, attention_ms = 0, other_ms = 0;
};

struct BenchE2eResult {
  std::string date;  // UTC, ISO 8601
  std::string device;
  std::string model_dir, model_shape;
  std::string weights_dtype, kv_dtype;
  double copy_gbps = 0;  // bytes read + written per second (memcpy, cudaMemcpy device to device)
  // The floor's bandwidth: on the CPU the read-only one (a sum over 512 MiB: a decode step only
  // reads, and a memcpy's reads + writes overstate what reads alone reach there); on CUDA the copy.
  double read_gbps = 0;  // cpu only
  double floor_gbps = 0;
  double sgemm_gflops = 0;  // cpu only: the host's fp32 GEMM rate, prefill's ceiling
  std::vector<BenchE2eRow> rows;
  std::vector<std::string> skipped;  // points left out (--max-kv-gib), with why
};

// The whole benchmark: plan (validation), model load, copy bandwidth, the grid; the table goes to
// `table` (stdout in the CLI; nullptr: nothing printed), progress to stderr, and the CSV is
// written to options.csv through a temporary file renamed at the end.
BenchE2eResult run_bench_e2e(const BenchE2eOptions& options, std::FILE* table = stdout);

}  // namespace adamas::cli
