#include "bench_command.h"

#include <fmt/format.h>
#include <omp.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstring>
#include <fstream>
#include <memory>
#include <random>
#include <vector>

#include "adamas/cache/paged_kv_cache.h"
#include "adamas/common/error.h"
#include "adamas/common/simd.h"
#include "adamas/core/hadamard.h"
#include "adamas/decode/decode_attention.h"
#include "adamas/policy/policy.h"
#include "adamas/runtime/bandwidth.h"
#include "flag_checks.h"
#include "progress.h"
#include "result_file.h"

namespace adamas::cli {
namespace {

// The 1-minute load average: benchmarks on a shared machine say how busy it was.
std::string load_average() {
  std::ifstream f("/proc/loadavg");
  std::string first;
  f >> first;
  return first.empty() ? "?" : first;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}

struct Timing {  // medians over repetitions, seconds
  double encode = 0, estimate = 0, topk = 0, attention = 0, total = 0;
};

// Evicts the caches so that every repetition reads K/V (and codes) from memory, as a real decode
// step does after the other layers have run: writes twice the last-level cache (at least 256 MiB).
class CacheFlusher {
 public:
  explicit CacheFlusher(bool enabled) : buf_(enabled ? flush_bytes() : 0) {}
  static size_t flush_bytes() {
    const long l3 = sysconf(_SC_LEVEL3_CACHE_SIZE);
    return std::max(size_t{256} << 20, l3 > 0 ? 2 * static_cast<size_t>(l3) : 0);
  }
  void operator()() {
    if (buf_.empty()) return;
    ++round_;
#pragma omp parallel for
    for (size_t i = 0; i < buf_.size(); i += 64) buf_[i] = static_cast<char>(round_ + i);
  }

 private:
  std::vector<char> buf_;
  int round_ = 0;
};

Timing time_decode(DecodeAttention& attn, std::span<const SeqId> seqs, const float* q, float* out,
                   int reps, CacheFlusher& flush) {
  std::vector<double> enc, est, topk, att, total;
  for (int r = 0; r <= reps; ++r) {  // repetition 0 warms up
    flush();
    StageTimes t;
    attn.run(0, seqs, q, out, &t);
    if (r == 0) continue;
    enc.push_back(t.encode);
    est.push_back(t.estimate);
    topk.push_back(t.topk);
    att.push_back(t.attention);
    total.push_back(t.wall);
  }
  return {median(enc), median(est), median(topk), median(att), median(total)};
}

// Random K/V: a pool of Gaussian values read at random offsets (fast for long contexts).
class RandomRows {
 public:
  RandomRows(float sigma, uint32_t seed) : rng_(seed), pool_(1 << 20) {
    std::normal_distribution<float> normal(0.f, sigma);
    for (float& x : pool_) x = normal(rng_);
  }
  void fill(float* dst, size_t n) {
    std::uniform_int_distribution<size_t> pick(0, pool_.size() / 2);
    for (size_t done = 0; done < n;) {
      const size_t take = std::min(n - done, pool_.size() / 2);
      std::memcpy(dst + done, pool_.data() + pick(rng_), take * sizeof(float));
      done += take;
    }
  }

 private:
  std::mt19937 rng_;
  std::vector<float> pool_;
};

// Checks the options before anything is measured, naming the flag at fault.
void validate(const BenchOptions& o) {
  auto fail = [](const std::string& m) { throw adamas::Error(m); };
  check_head_dim(o.head_dim);
  if (o.kv_heads < 1 || o.heads < 1 || o.heads % o.kv_heads != 0)
    fail(fmt::format("--heads ({}) must be a positive multiple of --kv-heads ({})", o.heads,
                     o.kv_heads));
  if (o.contexts.empty() || o.budgets.empty()) fail("--contexts and --budgets need values");
  for (int c : o.contexts)
    if (c < 1) fail(fmt::format("--contexts: each context must be ≥ 1 token, got {}", c));
  for (int b : o.budgets)
    if (b < 1) fail(fmt::format("--budgets: each budget must be ≥ 1 token, got {}", b));
  if (o.batch < 1) fail(fmt::format("--batch must be ≥ 1, got {}", o.batch));
  if (o.reps < 1) fail(fmt::format("--reps must be ≥ 1, got {}", o.reps));
  if (o.page_size < 1) fail(fmt::format("--page-size must be ≥ 1, got {}", o.page_size));
}

}  // namespace

int run_bench(const BenchOptions& o) {
  validate(o);
  ResultFile result(o.csv, "--csv");  // before any measurement: a bad path fails now
  std::ofstream& csv = result.out();
  if (!o.isa.empty()) force_simd_target(o.isa);
  const int threads = o.threads > 0 ? o.threads : omp_get_max_threads();
  omp_set_num_threads(threads);
  const DType dtype = parse_dtype(o.dtype);
  PolicyConfig sparse = parse_policy(o.policy);
  sparse.dense_layers = 0;
  PolicyConfig full;
  full.kind = PolicyKind::kFull;

  fmt::print(
      "adamas bench: decode attention, one layer, {} q / {} KV heads, head_dim {}, {} KV, "
      "batch {}, page {}\n",
      o.heads, o.kv_heads, o.head_dim, o.dtype, o.batch, o.page_size);
  fmt::print(
      "policy {}; SIMD {}; {} threads; median of {} runs; caches flushed: {}\n", sparse.describe(),
      simd_target(), threads, o.reps,
      o.flush ? fmt::format("yes ({} MiB written)", CacheFlusher::flush_bytes() >> 20) : "no");
  const double copy_gbs = model::host_copy_bandwidth_gbps(threads);
  const double read_gbs = model::host_read_bandwidth_gbps(threads);
  fmt::print(
      "memory bandwidth: copy {:.1f} GB/s (read + write), read-only {:.1f} GB/s; load "
      "average {}\n\n",
      copy_gbs, read_gbs, load_average());

  csv << "context,budget,batch,heads,kv_heads,head_dim,dtype,policy,simd,threads,dense_ms,"
         "encode_ms,estimate_ms,topk_ms,attention_ms,total_ms,speedup,dense_gbs,estimate_gbs,"
         "copy_gbs,read_gbs,loadavg\n";
  fmt::print("{:>8} {:>6} {:>9} | {:>8} {:>9} {:>8} {:>8} {:>9} | {:>7} | {:>9} {:>9}\n", "context",
             "budget", "dense ms", "encode", "estimate", "top-k", "attn", "total ms", "speedup",
             "dense GB/s", "est GB/s");
  CacheFlusher flush(o.flush);
  CodeSpec code_spec;
  code_spec.head_dim = o.head_dim;
  code_spec.bits = sparse.bits;
  const size_t esize = dtype_size(dtype);
  for (int ctx : o.contexts) {
    CacheConfig cc;
    cc.num_layers = 1;
    cc.num_kv_heads = o.kv_heads;
    cc.head_dim = o.head_dim;
    cc.page_size = o.page_size;
    cc.num_pages = o.batch * cc.pages_for(ctx);
    cc.dtype = dtype;
    cc.store_page_minmax = sparse.kind == PolicyKind::kQuest;
    configure_cache_for(sparse, cc);
    PagedKVCache cache(cc);
    std::vector<SeqId> seqs;
    {
      Progress progress(fmt::format("prefill {}K x {}", ctx / 1024, o.batch),
                        int64_t{ctx} * o.batch);
      RandomRows rows(10.f, 1234 + ctx);
      const int chunk = 1024;
      std::vector<float> k(size_t(chunk) * o.kv_heads * o.head_dim), v(k.size());
      for (int b = 0; b < o.batch; ++b) {
        seqs.push_back(cache.add_sequence());
        for (int t = 0; t < ctx; t += chunk) {
          const int n = std::min(chunk, ctx - t);
          rows.fill(k.data(), size_t(n) * o.kv_heads * o.head_dim);
          rows.fill(v.data(), size_t(n) * o.kv_heads * o.head_dim);
          cache.append(0, seqs.back(), k.data(), v.data(), n);
          progress.update(int64_t{b} * ctx + t + n);
        }
      }
    }
    std::vector<float> q(size_t(o.batch) * o.heads * o.head_dim), out(q.size());
    RandomRows(1.f, 99).fill(q.data(), q.size());

    auto full_policy = make_policy(full);
    DecodeAttention dense_attn(cache, *full_policy, o.heads, threads);
    const Timing dense = time_decode(dense_attn, seqs, q.data(), out.data(), o.reps, flush);
    const double kv_bytes = double(o.batch) * o.kv_heads * ctx * o.head_dim * esize * 2;
    const double dense_gbs = kv_bytes / dense.total / 1e9;
    for (int budget : o.budgets) {
      if (budget >= ctx) continue;
      PolicyConfig pc = sparse;
      pc.budget = budget;
      auto policy = make_policy(pc);
      DecodeAttention attn(cache, *policy, o.heads, threads);
      const Timing t = time_decode(attn, seqs, q.data(), out.data(), o.reps, flush);
      const double code_bytes = double(o.batch) * o.kv_heads * ctx * code_spec.key_code_bytes();
      const double est_gbs =
          sparse.kind == PolicyKind::kAdamas && t.estimate > 0 ? code_bytes / t.estimate / 1e9 : 0;
      const double speedup = dense.total / t.total;
      fmt::print(
          "{:>8} {:>6} {:>9.3f} | {:>8.3f} {:>9.3f} {:>8.3f} {:>8.3f} {:>9.3f} | {:>6.1f}x "
          "| {:>9.1f} {:>9.1f}\n",
          ctx, budget, dense.total * 1e3, t.encode * 1e3, t.estimate * 1e3, t.topk * 1e3,
          t.attention * 1e3, t.total * 1e3, speedup, dense_gbs, est_gbs);
      csv << fmt::format(
          "{},{},{},{},{},{},{},{},{},{},{:.4f},{:.4f},{:.4f},{:.4f},{:.4f},{:.4f},"
          "{:.3f},{:.2f},{:.2f},{:.2f},{:.2f},{}\n",
          ctx, budget, o.batch, o.heads, o.kv_heads, o.head_dim, o.dtype,
          "\"" + o.policy + "\"",  // the spec as given (quoted: it may hold commas)
          simd_target(), threads, dense.total * 1e3, t.encode * 1e3, t.estimate * 1e3, t.topk * 1e3,
          t.attention * 1e3, t.total * 1e3, speedup, dense_gbs, est_gbs, copy_gbs, read_gbs,
          load_average());
    }
  }
  result.commit();
  fmt::print(
      "\ndense GB/s counts K and V bytes read; est GB/s counts key-code bytes read.\n"
      "machine: copy {:.1f} GB/s (read + write), read-only {:.1f} GB/s.\nwrote {}\n",
      copy_gbs, read_gbs, o.csv);
  return 0;
}

void add_bench_command(CLI::App& app, int& status) {
  auto o = std::make_shared<BenchOptions>();
  CLI::App* cmd =
      app.add_subcommand("bench", "Time one layer's decode attention: Adamas stages vs dense");
  cmd->add_option("--contexts", o->contexts, "context lengths (tokens)")
      ->delimiter(',')
      ->check(positive(kMaxTokens));
  cmd->add_option("--budgets", o->budgets, "token budgets")
      ->delimiter(',')
      ->check(positive(kMaxTokens));
  cmd->add_option("--heads", o->heads, "query heads")->check(positive(kMaxHeads));
  cmd->add_option("--kv-heads", o->kv_heads, "KV heads (GQA when fewer than --heads)")
      ->check(positive(kMaxHeads));
  cmd->add_option("--head-dim", o->head_dim, "head dimension (power of two, 16..256)")
      ->check(head_dim_check());
  cmd->add_option("--batch", o->batch, "sequences per step")->check(positive(4096));
  cmd->add_option("--page-size", o->page_size, "KV cache page size (tokens)")
      ->check(positive(kMaxPageSize));
  cmd->add_option("--dtype", o->dtype, "KV dtype: f16, bf16 or f32");
  cmd->add_option("--policy", o->policy,
                  "sparse policy spec, e.g. adamas, adamas:bits=3,dist=l2, quest, streaming");
  cmd->add_option("--threads", o->threads, "threads (default: all cores)")->check(threads_range());
  cmd->add_option("--reps", o->reps, "timed repetitions per point (median reported)")
      ->check(positive(1000000));
  cmd->add_option("--csv", o->csv, "CSV output file");
  cmd->add_option("--isa", o->isa, "force a SIMD target (e.g. AVX2, EMU128)");
  cmd->add_flag("!--no-flush", o->flush, "keep caches warm between repetitions");
  cmd->callback([o, &status] { status = run_bench(*o); });
}

}  // namespace adamas::cli
