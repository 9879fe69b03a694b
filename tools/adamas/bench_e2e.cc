#include "bench_e2e.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>

#include "adamas/common/error.h"
#include "adamas/model/config.h"
#include "adamas/runtime/bandwidth.h"
#include "eval/common.h"
#include "progress.h"
#include "result_file.h"

namespace adamas::cli {
namespace {

namespace fs = std::filesystem;
using clock = std::chrono::steady_clock;

[[noreturn]] void fail(const std::string& message) { throw Error(message); }

std::string trim(const std::string& s) {
  const size_t b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return {};
  return s.substr(b, s.find_last_not_of(" \t") - b + 1);
}

std::vector<std::string> split(const std::string& text, const std::string& separators) {
  std::vector<std::string> parts;
  size_t start = 0;
  for (;;) {
    const size_t end = text.find_first_of(separators, start);
    parts.push_back(trim(text.substr(start, end - start)));
    if (end == std::string::npos) return parts;
    start = end + 1;
  }
}

// "8192,32768" or "8K,32K" (K: × 1024); every value ≥ 1.
std::vector<int> parse_counts(const std::string& flag, const std::string& text,
                              const char* example) {
  std::vector<int> values;
  for (const std::string& item : split(text, ",")) {
    if (item.empty()) continue;
    int64_t v = 0;
    const char* end = item.data() + item.size();
    auto [p, ec] = std::from_chars(item.data(), end, v);
    int64_t scale = 1;
    if (ec == std::errc() && p + 1 == end && (*p == 'k' || *p == 'K')) {
      scale = 1024;
      ++p;
    }
    if (ec != std::errc() || p != end)
      fail(fmt::format("{}: '{}' is not a whole number (e.g. {} {})", flag, item, flag, example));
    v *= scale;
    if (v < 1 || v > (int64_t{1} << 28))
      fail(fmt::format("{}: each value must be in [1, {}], got {}", flag, int64_t{1} << 28, v));
    values.push_back(static_cast<int>(v));
  }
  if (values.empty())
    fail(fmt::format("{} needs at least one value (e.g. {} {})", flag, flag, example));
  return values;
}

// Policy specs separated by ';' or ','. A ',' also separates a spec's key=value pairs
// ("adamas:gqa=shared,bits=3"): an item holding '=' but no ':' continues the previous spec.
std::vector<std::string> split_policy_specs(const std::string& text) {
  std::vector<std::string> specs;
  for (const std::string& group : split(text, ";"))
    for (const std::string& item : split(group, ",")) {
      if (item.empty()) continue;
      const bool continues = item.find('=') != std::string::npos &&
                             item.find(':') == std::string::npos && !specs.empty();
      if (continues) {
        specs.back() += "," + item;
      } else {
        specs.push_back(item);
      }
    }
  return specs;
}

bool names_key(const std::string& spec, const std::string& key) {
  const size_t colon = spec.find(':');
  if (colon == std::string::npos) return false;
  for (const std::string& kv : split(spec.substr(colon + 1), ","))
    if (kv.rfind(key + "=", 0) == 0) return true;
  return false;
}

std::string utc_now() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// The model's shape in one CSV-safe field, e.g. "llama L32 h4096 H32/8x128 ff14336 V128256".
std::string shape_summary(const model::ModelConfig& c) {
  return fmt::format("{} L{} h{} H{}/{}x{} ff{} V{}{}", c.model_type, c.num_layers, c.hidden_size,
                     c.num_heads, c.num_kv_heads, c.head_dim, c.intermediate_size, c.vocab_size,
                     c.tie_word_embeddings ? " tied" : "");
}

// The dtype the device runs weights stored as `stored` in: the GPU converts f32 to bf16 unless
// asked not to (RuntimeOptions::gpu_f32_weights).
DType run_dtype(DType stored, model::Device device, bool gpu_f32_weights) {
  if (device == model::Device::kCuda && stored == DType::kF32 && !gpu_f32_weights)
    return DType::kBF16;
  return stored;
}

double run_size(DType stored, model::Device device, bool gpu_f32_weights) {
  return static_cast<double>(dtype_size(run_dtype(stored, device, gpu_f32_weights)));
}

double matrix_elements(const model::Matrix& m) { return double(m.rows) * m.cols; }

template <class F>
void for_each_layer_matrix(const model::ModelWeights& w, F&& f) {
  for (const model::LayerWeights& l : w.layers)
    for (const model::Matrix* m : {&l.q, &l.k, &l.v, &l.o, &l.gate, &l.up, &l.down}) f(*m);
}

double kv_cache_gib(const model::ModelConfig& c, const BenchE2ePlan& plan, int batch, int tokens) {
  const double per_token_head =
      2.0 * c.head_dim * dtype_size(plan.kv_dtype) + c.head_dim * plan.cache_policy.bits / 8.0;
  return double(batch) * tokens * c.num_layers * c.num_kv_heads * per_token_head /
         double(size_t{1} << 30);
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}

std::string short_count(int n) {
  return n % 1024 == 0 ? fmt::format("{}K", n / 1024) : std::to_string(n);
}

void print_header(std::FILE* out, const BenchE2ePlan& plan, const BenchE2eResult& r,
                  const model::LlamaModel& model) {
  if (out == nullptr) return;
  const auto& c = model.config();
  const auto& o = plan.options;
  fmt::print(out, "adamas bench-e2e: {} ({})\n", r.model_dir, c.describe());
  fmt::print(out,
             "{}; weights {} as run ({:.1f} MB read per step); KV {}; page {}; prefill chunk {}; "
             "{} warm-up + {} timed decode steps (median)\n",
             plan.device_line, r.weights_dtype,
             decode_weight_bytes(model, plan.device, o.gpu_f32_weights) / 1e6, r.kv_dtype,
             o.page_size, plan.prefill_chunk, kWarmupSteps, o.decode_steps);
  if (plan.device == model::Device::kCpu)
    fmt::print(out,
               "measured now: read-only {:.1f} GB/s, copy {:.1f} GB/s (read + write), sgemm {:.0f} "
               "GFLOP/s; the floor uses the read-only bandwidth\n",
               r.read_gbps, r.copy_gbps, r.sgemm_gflops);
  else
    fmt::print(out, "measured now: device copy {:.1f} GB/s (read + write), used by the floor\n",
               r.copy_gbps);
  fmt::print(out, "policies:");
  for (const auto& p : plan.policies) fmt::print(out, " {} = {};", p.label, p.config.describe());
  fmt::print(
      out,
      "\nbyte floor of a decode step = (W + KV) / the bandwidth above, where\n"
      "  W  = weight bytes read once per step: the layers' q,k,v,o,gate,up,down + final norm "
      "+ lm_head, in the dtype the device runs (f32 checkpoints run in bf16 on cuda unless "
      "--gpu-f32-weights)\n"
      "  KV = sum over sequences and layers at length L (tokens attended, current "
      "included; mean over the timed steps), s = KV dtype size, d = head_dim:\n"
      "       dense layer (full, layer < dense_layers or budget >= L): 2 L kv_heads d s\n"
      "       adamas sparse layer: L kv_heads d bits/8 (key codes) + min(budget, L) n d 2 s,"
      "  n = q heads (per-head) or kv heads (gqa=shared)\n"
      "       oracle: L kv_heads d s + min(budget, L) n d 2 s;  quest: 2 ceil(L/page) "
      "kv_heads d 4 + min(budget, L) n d 2 s;  streaming: min(budget, L) kv_heads d 2 s\n"
      "prefill TFLOP/s: 2 x layer matrix parameters per token + causal attention "
      "4 d heads (position + 1) per token and layer + the LM head for the last token{}\n\n",
      plan.device == model::Device::kCpu ? "; x sgemm = prefill FLOP/s / the sgemm rate" : "");
  fmt::print(out, "{:>5} {:>8} {:<26} {:>13} {:>8} {:>7} {:>14} {:>9} {:>9} {:>7} {:>8}\n", "batch",
             "context", "policy", "prefill tok/s", "TFLOP/s", "x sgemm", "decode ms/step", "tok/s",
             "floor ms", "xfloor", "speedup");
}

void print_row(std::FILE* out, const BenchE2eRow& w) {
  if (out == nullptr) return;
  fmt::print(out,
             "{:>5} {:>8} {:<26} {:>13.0f} {:>8.3f} {:>7} {:>14.3f} {:>9.1f} {:>9.3f} {:>6.2f}x "
             "{:>8}\n",
             w.batch, w.context, w.policy.substr(0, 26), w.prefill_tok_s, w.prefill_tflops,
             w.prefill_x_sgemm > 0 ? fmt::format("{:.2f}", w.prefill_x_sgemm) : std::string("-"),
             w.decode_ms, w.decode_tok_s, w.floor_ms, w.x_floor,
             w.speedup > 0 ? fmt::format("{:.2f}x", w.speedup) : std::string("-"));
  if (w.profiled)
    fmt::print(out, "{:>15} device ms per step: products {:.3f}, attention {:.3f}, rest {:.3f}\n",
               "", w.products_ms, w.attention_ms, w.other_ms);
  std::fflush(out);
}

constexpr const char* kCsvHeader =
    "date,device,model,model_shape,weights_dtype,kv_dtype,copy_gbps,batch,context,policy,budget,"
    "dense_layers,prefill_tok_s,prefill_tflops,decode_ms,decode_tok_s,floor_ms,x_floor,"
    "speedup_vs_full,weight_bytes,kv_bytes,profile_products_ms,profile_attention_ms,"
    "profile_other_ms,read_gbps,floor_gbps,sgemm_gflops,prefill_x_sgemm\n";

std::string profiled(const BenchE2eRow& w, double ms) {
  return w.profiled ? fmt::format("{:.6g}", ms) : std::string();
}

std::string csv_line(const BenchE2eResult& r, const BenchE2eRow& w) {
  return fmt::format(
      "{},{},{},{},{},{},{:.2f},{},{},{},{},{},{:.6g},{:.6g},{:.6g},{:.6g},{:.6g},{:.6g},{},{:.0f},"
      "{:.0f},{},{},{},{},{:.2f},{},{}\n",
      r.date, r.device, eval::csv_quote(r.model_dir), r.model_shape, r.weights_dtype, r.kv_dtype,
      r.copy_gbps, w.batch, w.context, eval::csv_quote(w.policy), w.budget, w.dense_layers,
      w.prefill_tok_s, w.prefill_tflops, w.decode_ms, w.decode_tok_s, w.floor_ms, w.x_floor,
      w.speedup > 0 ? fmt::format("{:.6g}", w.speedup) : std::string(), w.weight_bytes, w.kv_bytes,
      profiled(w, w.products_ms), profiled(w, w.attention_ms), profiled(w, w.other_ms),
      r.read_gbps > 0 ? fmt::format("{:.2f}", r.read_gbps) : std::string(), r.floor_gbps,
      r.sgemm_gflops > 0 ? fmt::format("{:.1f}", r.sgemm_gflops) : std::string(),
      w.prefill_x_sgemm > 0 ? fmt::format("{:.3f}", w.prefill_x_sgemm) : std::string());
}

// Rows of one (context, batch) point: one prefill, then every policy decodes from it.
std::vector<BenchE2eRow> run_point(const model::LlamaModel& model, const BenchE2ePlan& plan,
                                   const BenchE2eResult& r, int context, int batch) {
  const auto& c = model.config();
  const auto& o = plan.options;
  const int steps = kWarmupSteps + o.decode_steps;
  model::RuntimeOptions ro;
  ro.device = plan.device;
  ro.policy = plan.cache_policy;
  ro.kv_dtype = plan.kv_dtype;
  ro.page_size = o.page_size;
  ro.max_batch = batch;
  ro.max_tokens = batch * (context + steps + 1);
  ro.prefill_chunk = plan.prefill_chunk;
  ro.threads = o.threads;
  ro.any_policy = true;
  ro.gpu_f32_weights = o.gpu_f32_weights;
  ro.cuda_graphs = o.cuda_graphs && !o.profile;
  ro.profile_steps = o.profile;
  model::Session session(model, ro);

  const int vocab = c.vocab_size;
  std::vector<SeqId> seqs;
  std::vector<int32_t> first(batch);  // each sequence's next token after the prefill
  std::vector<float> logits(size_t(batch) * vocab);
  double prefill_s = 0;
  {
    Progress progress(fmt::format("prefill {} x {}", short_count(context), batch),
                      int64_t{batch} * context);
    std::vector<int32_t> ids(context);
    for (int b = 0; b < batch; ++b) {
      std::seed_seq seed{uint32_t(o.seed), uint32_t(o.seed >> 32), uint32_t(context), uint32_t(b)};
      std::mt19937 rng(seed);
      std::uniform_int_distribution<int32_t> token(0, vocab - 1);
      for (int32_t& id : ids) id = token(rng);
      seqs.push_back(session.add_sequence());
      const auto t0 = clock::now();
      session.prefill(seqs.back(), ids, logits.data(), false,
                      [&](int done, int) { progress.update(int64_t{b} * context + done); });
      if (b == 0) prefill_s = std::chrono::duration<double>(clock::now() - t0).count();
      first[b] = eval::argmax(logits.data(), vocab);
    }
  }

  const double weight_bytes = decode_weight_bytes(model, plan.device, o.gpu_f32_weights);
  std::vector<BenchE2eRow> rows;
  const int npol = static_cast<int>(plan.policies.size());
  Progress progress(fmt::format("decode {} x {}, {} policies", short_count(context), batch, npol),
                    int64_t{npol} * steps);
  for (const BenchE2ePolicy& p : plan.policies) {
    for (SeqId s : seqs) session.truncate(s, context);
    session.set_policy(p.config);
    std::vector<int32_t> tokens = first;
    std::vector<double> ms;
    model::StepProfile before;
    for (int step = 0; step < steps; ++step) {
      if (step == kWarmupSteps) before = session.step_profile();
      const auto t0 = clock::now();
      session.decode(seqs, tokens, logits.data());
      const double t = std::chrono::duration<double, std::milli>(clock::now() - t0).count();
      if (step >= kWarmupSteps) ms.push_back(t);
      for (int b = 0; b < batch; ++b)
        tokens[b] = eval::argmax(logits.data() + size_t(b) * vocab, vocab);
      progress.update(int64_t(rows.size()) * steps + step + 1);
    }
    BenchE2eRow w;
    w.batch = batch;
    w.context = context;
    w.policy = p.label;
    w.budget = p.config.kind == PolicyKind::kFull ? 0 : p.config.budget;
    w.dense_layers = p.config.dense_layers;
    w.prefill_tok_s = context / prefill_s;
    w.prefill_tflops = prefill_flops(model, context) / prefill_s / 1e12;
    if (r.sgemm_gflops > 0) w.prefill_x_sgemm = w.prefill_tflops * 1e3 / r.sgemm_gflops;
    w.decode_ms = median(ms);
    if (const model::StepProfile after = session.step_profile(); after.steps > before.steps) {
      const double n = after.steps - before.steps;
      w.profiled = true;
      w.products_ms = (after.products - before.products) / n;
      w.attention_ms = (after.attention - before.attention) / n;
      w.other_ms = (after.other() - before.other()) / n;
    }
    w.decode_tok_s = batch / (w.decode_ms / 1e3);
    // Timed step i (after the warm-ups) attends context + kWarmupSteps + i + 1 tokens.
    double kv = 0;
    for (int i = 0; i < o.decode_steps; ++i)
      kv +=
          decode_kv_bytes(c, p.config, context + kWarmupSteps + i + 1, plan.kv_dtype, o.page_size);
    w.weight_bytes = weight_bytes;
    w.kv_bytes = batch * kv / o.decode_steps;
    w.floor_ms = (w.weight_bytes + w.kv_bytes) / (r.floor_gbps * 1e9) * 1e3;
    w.x_floor = w.decode_ms / w.floor_ms;
    rows.push_back(w);
  }
  const auto full =
      std::find_if(rows.begin(), rows.end(), [](const BenchE2eRow& w) { return w.budget == 0; });
  if (full != rows.end())
    for (BenchE2eRow& w : rows) w.speedup = full->decode_ms / w.decode_ms;
  return rows;
}

}  // namespace

BenchE2ePlan plan_bench_e2e(const BenchE2eOptions& o) {
  BenchE2ePlan plan;
  plan.options = o;
  const eval::DeviceChoice device = eval::choose_device(o.device, "--device");
  plan.device = device.device;
  plan.device_line = device.describe();
  const bool cuda = plan.device == model::Device::kCuda;

  if (o.kv_dtype.empty()) {
    plan.kv_dtype = cuda ? DType::kBF16 : DType::kF16;
  } else if (o.kv_dtype == "f16" || o.kv_dtype == "bf16" || o.kv_dtype == "f32") {
    plan.kv_dtype = parse_dtype(o.kv_dtype);
  } else {
    fail(fmt::format("--kv-dtype: unknown dtype '{}': expected f16, bf16 or f32", o.kv_dtype));
  }
  eval::check_kv_dtype_on_device(plan.device, plan.kv_dtype, "--kv-dtype");

  plan.contexts = parse_counts("--contexts", o.contexts, "8192,32768,131072");
  plan.batches = parse_counts("--batches", o.batches, "1,16");
  auto at_least = [](const char* flag, double v, double min) {
    if (!(v >= min)) fail(fmt::format("{} must be ≥ {}, got {}", flag, min, v));
  };
  at_least("--decode-steps", o.decode_steps, 1);
  at_least("--budget", o.budget, 1);
  at_least("--dense-layers", o.dense_layers, 0);
  at_least("--page-size", o.page_size, 1);
  at_least("--prefill-chunk", o.prefill_chunk, 0);
  at_least("--max-kv-gib", o.max_kv_gib, 0);
  plan.prefill_chunk = o.prefill_chunk > 0 ? o.prefill_chunk : cuda ? 4096 : 256;
  plan.max_kv_gib = o.max_kv_gib > 0 ? o.max_kv_gib : cuda ? 100 : 8;

  // Policies: --budget and --dense-layers apply unless the spec names its own.
  const std::vector<std::string> specs = split_policy_specs(o.policies);
  if (specs.empty())
    fail("--policies needs at least one policy spec (e.g. --policies full,adamas)");
  bool have_codes = false;
  for (const std::string& spec : specs) {
    PolicyConfig pc;
    try {
      pc = parse_policy(spec);
      if (!names_key(spec, "budget")) pc.budget = o.budget;
      if (!names_key(spec, "dense_layers")) pc.dense_layers = o.dense_layers;
      pc.validate();
    } catch (const Error& e) {
      fail(fmt::format("--policies: '{}': {}", spec, e.what()));
    }
    eval::check_policy_on_device(plan.device, pc, spec, "--policies");
    if (pc.kind == PolicyKind::kAdamas) {
      // One prefill serves every policy: the cache holds one key-code layout.
      if (have_codes &&
          (pc.bits != plan.cache_policy.bits || pc.hadamard != plan.cache_policy.hadamard))
        fail(
            fmt::format("--policies: '{}': the adamas policies of one run must share bits and "
                        "hadamard (one prefill serves them all)",
                        spec));
      if (!have_codes) {
        plan.cache_policy = pc;
        plan.cache_policy.calibrate = false;  // set_policy sets each policy's thresholds
      }
      have_codes = true;
    }
    plan.policies.push_back({spec, pc});
  }

  if (o.csv.empty()) fail("--csv needs a file name");
  const fs::path dir = fs::path(o.csv).parent_path();
  if (!dir.empty() && !fs::is_directory(dir))
    fail(fmt::format("--csv {}: the directory '{}' does not exist", o.csv, dir.string()));

  if (o.model.empty()) fail("--model DIR is required (a Hugging Face checkpoint directory)");
  model::ModelConfig mc;
  try {
    mc = model::load_config(o.model);
  } catch (const Error& e) {
    fail(fmt::format("--model {}: {}", o.model, e.what()));
  }
  const int extra = kWarmupSteps + o.decode_steps + 1;
  for (int ctx : plan.contexts)
    if (mc.max_position_embeddings > 0 && ctx + extra > mc.max_position_embeddings)
      fail(
          fmt::format("--contexts: {} tokens + {} decode steps ({} warm-up, --decode-steps {}, "
                      "1 spare) is beyond the model's max_position_embeddings ({})",
                      ctx, extra, kWarmupSteps, o.decode_steps, mc.max_position_embeddings));
  for (int b : plan.batches)
    for (int ctx : plan.contexts)
      if (int64_t{b} * (ctx + extra) > std::numeric_limits<int>::max())
        fail(fmt::format("--batches {} x --contexts {}: more tokens than one session holds", b,
                         ctx));
  return plan;
}

double decode_weight_bytes(const model::LlamaModel& model, model::Device device,
                           bool gpu_f32_weights) {
  const model::ModelWeights& w = model.weights();
  double bytes = 0;
  for_each_layer_matrix(w, [&](const model::Matrix& m) {
    bytes += matrix_elements(m) * run_size(m.dtype, device, gpu_f32_weights);
  });
  bytes += matrix_elements(w.lm_head) * run_size(w.lm_head.dtype, device, gpu_f32_weights);
  bytes += double(w.final_norm.size()) * run_size(w.dtype, device, gpu_f32_weights);
  return bytes;
}

double decode_kv_bytes(const model::ModelConfig& c, const PolicyConfig& policy, int length,
                       DType kv_dtype, int page_size) {
  const double s = static_cast<double>(dtype_size(kv_dtype)), d = c.head_dim, L = length;
  const double kvh = c.num_kv_heads;
  const bool shared = policy.gqa == GqaMode::kGroupShared;
  const double n = shared ? kvh : c.num_heads;  // selection rows
  const double selected = std::min<double>(policy.budget, L) * n * d * 2 * s;
  const auto sel = make_policy(policy);
  double bytes = 0;
  for (int layer = 0; layer < c.num_layers; ++layer) {
    if (sel->is_dense(layer, length)) {
      bytes += 2 * L * kvh * d * s;
      continue;
    }
    switch (policy.kind) {
      case PolicyKind::kAdamas:
        bytes += L * kvh * d * policy.bits / 8 + selected;
        break;
      case PolicyKind::kOracle:
        bytes += L * kvh * d * s + selected;
        break;
      case PolicyKind::kQuest:
        bytes += 2 * std::ceil(L / page_size) * kvh * d * 4 + selected;
        break;
      case PolicyKind::kStreaming:
        bytes += std::min<double>(policy.budget, L) * kvh * d * 2 * s;
        break;
      case PolicyKind::kFull:
        break;  // dense above
    }
  }
  return bytes;
}

double prefill_flops(const model::LlamaModel& model, int tokens) {
  const auto& c = model.config();
  double params = 0;
  for_each_layer_matrix(model.weights(),
                        [&](const model::Matrix& m) { params += matrix_elements(m); });
  const double n = tokens;
  const double attention = 4.0 * c.head_dim * c.num_heads * c.num_layers * (n * (n + 1) / 2);
  return 2 * params * n + attention + 2.0 * c.vocab_size * c.hidden_size;
}

BenchE2eResult run_bench_e2e(const BenchE2eOptions& options, std::FILE* table) {
  const BenchE2ePlan plan = plan_bench_e2e(options);
  const auto& o = plan.options;
  ResultFile result(o.csv, "--csv");
  std::ofstream& csv = result.out();

  BenchE2eResult r;
  r.date = utc_now();
  r.device = std::string(model::device_name(plan.device));
  r.model_dir = o.model;
  r.kv_dtype = std::string(dtype_name(plan.kv_dtype));
  fmt::print(stderr, "{}; loading {} ...\n", plan.device_line, o.model);
  const auto model = model::LlamaModel::load(o.model);
  const auto& c = model->config();
  r.model_shape = shape_summary(c);
  r.weights_dtype =
      std::string(dtype_name(run_dtype(model->weights().dtype, plan.device, o.gpu_f32_weights)));
  fmt::print(stderr, "measuring the {} bandwidth ...\n", r.device);
  if (plan.device == model::Device::kCpu) {
    r.copy_gbps = model::host_copy_bandwidth_gbps(o.threads);
    r.read_gbps = model::host_read_bandwidth_gbps(o.threads);
    r.floor_gbps = r.read_gbps;
    r.sgemm_gflops = model::host_sgemm_gflops(o.threads);
  } else {
    r.copy_gbps = model::copy_bandwidth_gbps(plan.device);
    r.floor_gbps = r.copy_gbps;
  }
  if (!(r.floor_gbps > 0)) fail("the memory bandwidth could not be measured (buffers not mapped)");
  print_header(table, plan, r, *model);
  csv << kCsvHeader;

  const int extra = kWarmupSteps + o.decode_steps + 1;
  for (int context : plan.contexts)
    for (int batch : plan.batches) {
      const double gib = kv_cache_gib(c, plan, batch, context + extra);
      if (gib > plan.max_kv_gib) {
        r.skipped.push_back(
            fmt::format("batch {} x context {}: KV cache {:.1f} GiB > --max-kv-gib "
                        "{}",
                        batch, context, gib, plan.max_kv_gib));
        if (table != nullptr) fmt::print(table, "skipped {}\n", r.skipped.back());
        continue;
      }
      for (const BenchE2eRow& w : run_point(*model, plan, r, context, batch)) {
        print_row(table, w);
        csv << csv_line(r, w);
        r.rows.push_back(w);
      }
      csv.flush();
    }
  result.commit();
  if (table != nullptr)
    fmt::print(table,
               "\nxfloor = decode ms / floor ms; speedup = full attention's decode ms / the "
               "row's, at the same point. wrote {}\n",
               o.csv);
  return r;
}

}  // namespace adamas::cli
