#include "recall_command.h"

#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cmath>
#include <fstream>
#include <memory>
#include <random>

#include "adamas/cache/paged_kv_cache.h"
#include "adamas/common/error.h"
#include "adamas/core/attention.h"
#include "adamas/core/topk.h"
#include "adamas/decode/decode_attention.h"
#include "flag_checks.h"
#include "progress.h"
#include "result_file.h"

namespace adamas::cli {
namespace {

std::vector<float> unit_vector(std::mt19937& rng, int d) {
  std::normal_distribution<float> normal;
  std::vector<float> v(d);
  double n = 0;
  for (float& x : v) {
    x = normal(rng);
    n += double{x} * x;
  }
  for (float& x : v) x = static_cast<float>(x / std::sqrt(n));
  return v;
}

// Keys: Gaussian with 4 outlier channels per head (6x the others' scale, as LLM keys have), so
// that a random direction sees a standard deviation of kKeyScale; queries have the same norm as
// keys. Relevant keys are shifted along the direction of their group (all heads of the KV head)
// or of one query head.
constexpr float kKeyScale = 1.5f;

struct Synthetic {
  int d, kv_heads, group;
  std::vector<std::vector<float>> group_dir;  // [kv_head][d]
  std::vector<std::vector<float>> head_dir;   // [q_head][d]
  std::vector<float> k, v;                    // [context][kv_heads][d]
};

Synthetic make_data(const RecallOptions& o, std::mt19937& rng) {
  Synthetic s{o.head_dim, o.kv_heads, o.heads / o.kv_heads, {}, {}, {}, {}};
  const int d = o.head_dim;
  for (int g = 0; g < o.kv_heads; ++g) s.group_dir.push_back(unit_vector(rng, d));
  for (int h = 0; h < o.heads; ++h) s.head_dir.push_back(unit_vector(rng, d));
  std::vector<std::vector<float>> sigma(o.kv_heads, std::vector<float>(d, 1.0f));
  std::uniform_int_distribution<int> channel(0, d - 1);
  for (auto& sg : sigma)
    for (int i = 0; i < 4; ++i) sg[channel(rng)] = 6.0f;
  std::normal_distribution<float> normal;
  std::uniform_real_distribution<float> uniform;
  std::uniform_int_distribution<int> pick_head(0, s.group - 1);
  s.k.resize(size_t(o.context) * o.kv_heads * d);
  s.v.resize(s.k.size());
  // Query norm Q = kKeyScale·sqrt(d) (a key's): random keys' logits q·k/sqrt(d) ~ N(0, kKeyScale²);
  // a shift of boost·sqrt(d)/Q along a query's direction adds `boost` to its logit.
  const float Q = std::sqrt(static_cast<float>(d)) * kKeyScale;
  const float shift = static_cast<float>(o.boost) * std::sqrt(static_cast<float>(d)) / Q;
  for (int t = 0; t < o.context; ++t) {
    for (int g = 0; g < o.kv_heads; ++g) {
      float* k = s.k.data() + (size_t(t) * o.kv_heads + g) * d;
      float* v = s.v.data() + (size_t(t) * o.kv_heads + g) * d;
      double ms = 0;
      for (int i = 0; i < d; ++i) ms += double{sigma[g][i]} * sigma[g][i];
      const float scale = kKeyScale / static_cast<float>(std::sqrt(ms / d));
      for (int i = 0; i < d; ++i) {
        k[i] = normal(rng) * sigma[g][i] * scale;
        v[i] = normal(rng);
      }
      if (uniform(rng) < o.relevant) {
        const bool whole_group = uniform(rng) < o.agreement;
        const auto& dir = whole_group ? s.group_dir[g] : s.head_dir[g * s.group + pick_head(rng)];
        for (int i = 0; i < d; ++i) k[i] += shift * dir[i];
      }
    }
  }
  return s;
}

// Query of head h: the group direction weighted sqrt(agreement), its own sqrt(1 − agreement),
// plus a little noise; norm Q.
void make_queries(const RecallOptions& o, const Synthetic& s, std::mt19937& rng, float* q) {
  const int d = o.head_dim;
  const float Q = std::sqrt(static_cast<float>(d)) * kKeyScale;
  const float a = static_cast<float>(std::sqrt(o.agreement)),
              b = static_cast<float>(std::sqrt(1 - o.agreement));
  for (int h = 0; h < o.heads; ++h) {
    const auto noise = unit_vector(rng, d);
    const auto& gd = s.group_dir[h / s.group];
    const auto& hd = s.head_dir[h];
    double n = 0;
    std::vector<float> x(d);
    for (int i = 0; i < d; ++i) {
      x[i] = a * gd[i] + b * hd[i] + 0.3f * noise[i];
      n += double{x[i]} * x[i];
    }
    for (int i = 0; i < d; ++i) q[h * d + i] = static_cast<float>(Q * x[i] / std::sqrt(n));
  }
}

struct Quality {
  double recall = 0, mass = 0, error = 0;
  int n = 0;
};

}  // namespace

int run_recall(const RecallOptions& o) {
  if (o.heads % o.kv_heads != 0) {
    throw Error(fmt::format("--heads {} must be a multiple of --kv-heads {}", o.heads, o.kv_heads));
  }
  ResultFile result(o.csv, "--csv");  // before any work: a bad path fails now
  std::ofstream& csv = result.out();
  std::mt19937 rng(o.seed);
  fmt::print(
      "adamas recall: synthetic keys with planted relevant ones; context {}, {} q / {} KV "
      "heads, head_dim {}, group agreement {:.2f}, {:.1f}% relevant (+{} logits), {} "
      "query draws\n",
      o.context, o.heads, o.kv_heads, o.head_dim, o.agreement, 100 * o.relevant, o.boost, o.steps);
  const Synthetic data = make_data(o, rng);
  std::vector<std::vector<float>> queries(o.steps,
                                          std::vector<float>(size_t(o.heads) * o.head_dim));
  for (auto& q : queries) make_queries(o, data, rng, q.data());
  const int d = o.head_dim, group = o.heads / o.kv_heads;
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));

  csv << "policy,budget,context,heads,kv_heads,agreement,recall,attention_mass,output_rel_error,"
         "ms_per_step\n";
  fmt::print("\n{:<34} {:>6} | {:>7} {:>7} {:>9} | {:>8}\n", "policy", "budget", "recall", "mass",
             "out err", "ms/step");
  Progress progress("recall", int64_t(o.policies.size()) * o.budgets.size());
  int done = 0;
  for (const std::string& spec : o.policies) {
    PolicyConfig base = parse_policy(spec);
    base.dense_layers = 0;
    CacheConfig cc;
    cc.num_layers = 1;
    cc.num_kv_heads = o.kv_heads;
    cc.head_dim = d;
    cc.page_size = o.page_size;
    cc.num_pages = cc.pages_for(o.context);
    cc.dtype = DType::kF16;
    configure_cache_for(base, cc);
    PagedKVCache cache(cc);
    const SeqId seq = cache.add_sequence();
    cache.append(0, seq, data.k.data(), data.v.data(), o.context);
    if (base.calibrate) cache.calibrate_thresholds(0);
    for (int budget : o.budgets) {
      PolicyConfig pc = base;
      pc.budget = budget;
      auto policy = make_policy(pc);
      DecodeAttention attn(cache, *policy, o.heads, o.threads);
      Quality quality;
      StageTimes times;
      std::vector<float> out(size_t(o.heads) * d), dense(out.size()), scores(o.context);
      std::vector<int32_t> oracle(budget);
      for (const auto& q : queries) {
        attn.run(0, std::span<const SeqId>(&seq, 1), q.data(), out.data(), &times);
        for (int h = 0; h < o.heads; ++h) {
          const int g = h / group;
          const PagedKV kv = cache.kv(0, seq, g);
          const float* qh = q.data() + size_t(h) * d;
          dense_decode_attention(qh, 1, kv, scale, dense.data() + size_t(h) * d);
          key_scores(qh, 1, kv, scores.data(), o.context);
          // Oracle set with the same budget semantics: top budget − 1 of the past + current.
          const int c = select_largest(scores.data(), o.context - 1, budget - 1, oracle.data());
          oracle[c] = o.context - 1;
          const HeadScratch& s = attn.scratch(0, g);
          const int row = s.shared ? 0 : h % group;
          const int32_t* sel = s.row(row, budget);
          const int count = s.counts[row];
          int hits = 0;
          for (int i = 0; i < count; ++i)
            hits += std::binary_search(oracle.begin(), oracle.begin() + c + 1, sel[i]);
          double mx = -INFINITY, total = 0, captured = 0;
          for (float x : scores) mx = std::max(mx, double{x} * scale);
          for (float x : scores) total += std::exp(double{x} * scale - mx);
          for (int i = 0; i < count; ++i) captured += std::exp(double{scores[sel[i]]} * scale - mx);
          double err = 0, ref = 0;
          for (int i = 0; i < d; ++i) {
            const double a = out[size_t(h) * d + i], b = dense[size_t(h) * d + i];
            err += (a - b) * (a - b);
            ref += b * b;
          }
          quality.recall += double(hits) / (c + 1);
          quality.mass += captured / total;
          quality.error += std::sqrt(err / ref);
          ++quality.n;
        }
      }
      const double n = quality.n;
      const double ms = times.wall / o.steps * 1e3;
      fmt::print(stderr, "\r");
      fmt::print("{:<34} {:>6} | {:>7.3f} {:>7.3f} {:>9.4f} | {:>8.3f}\n",
                 pc.describe().substr(0, 34), budget, quality.recall / n, quality.mass / n,
                 quality.error / n, ms);
      csv << fmt::format("\"{}\",{},{},{},{},{},{:.4f},{:.4f},{:.5f},{:.4f}\n", spec, budget,
                         o.context, o.heads, o.kv_heads, o.agreement, quality.recall / n,
                         quality.mass / n, quality.error / n, ms);
      progress.update(++done);
    }
  }
  progress.finish();
  result.commit();
  fmt::print("wrote {}\n", o.csv);
  return 0;
}

void add_recall_command(CLI::App& app, int& status) {
  auto o = std::make_shared<RecallOptions>();
  CLI::App* cmd = app.add_subcommand(
      "recall", "Selection quality of each policy on synthetic data with planted relevant keys");
  cmd->add_option("--context", o->context, "context length (tokens)")
      ->check(CLI::Range(2, kMaxTokens));
  cmd->add_option("--budgets", o->budgets, "token budgets")
      ->delimiter(',')
      ->check(positive(kMaxTokens));
  cmd->add_option("--heads", o->heads, "query heads")->check(positive(kMaxHeads));
  cmd->add_option("--kv-heads", o->kv_heads, "KV heads")->check(positive(kMaxHeads));
  cmd->add_option("--head-dim", o->head_dim, "head dimension (power of two, 16..256)")
      ->check(head_dim_check());
  cmd->add_option("--page-size", o->page_size, "KV cache page size (Quest's page)")
      ->check(positive(kMaxPageSize));
  cmd->add_option("--steps", o->steps, "query draws averaged")->check(positive(1000000));
  cmd->add_option("--agreement", o->agreement,
                  "share of each query's direction common to its GQA group (0..1)")
      ->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--relevant", o->relevant, "fraction of planted relevant keys")
      ->check(unit_interval());
  cmd->add_option("--boost", o->boost, "logit boost of a relevant key");
  cmd->add_option("--policies", o->policies, "policy specs")->delimiter(';');
  cmd->add_option("--threads", o->threads, "threads (default: all cores)")->check(threads_range());
  cmd->add_option("--csv", o->csv, "CSV output file");
  cmd->add_option("--seed", o->seed, "random seed");
  cmd->callback([o, &status] { status = run_recall(*o); });
}

}  // namespace adamas::cli
