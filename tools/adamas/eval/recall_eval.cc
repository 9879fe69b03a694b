#include "recall_eval.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <random>
#include <tuple>

#include "../passkey.h"
#include "adamas/common/dtype.h"
#include "adamas/common/error.h"
#include "adamas/core/attention.h"
#include "adamas/core/codes.h"
#include "adamas/core/topk.h"
#include "adamas/decode/decode_attention.h"

namespace adamas::eval {

Capture capture_decode(const model::LlamaModel& model, std::span<const int32_t> ids, int prompt,
                       int steps, bool greedy, int threads) {
  const model::ModelConfig& c = model.config();
  if (prompt < 1 || prompt > static_cast<int>(ids.size()) || steps < 1 ||
      (!greedy && prompt + steps > static_cast<int>(ids.size())))
    throw Error(fmt::format("capture: prompt {} and steps {} do not fit {} ids", prompt, steps,
                            ids.size()));
  Capture cap;
  cap.prompt = prompt;
  cap.steps = steps;
  cap.layers = c.num_layers;
  cap.kv_heads = c.num_kv_heads;
  cap.heads = c.num_heads;
  cap.head_dim = c.head_dim;
  const size_t qsize = size_t(c.num_heads) * c.head_dim;
  cap.q.resize(size_t(steps) * c.num_layers * qsize);
  model::RuntimeOptions ro;
  ro.max_tokens = prompt + steps + 8;
  ro.threads = threads;
  model::Session session(model, ro);
  const SeqId seq = session.add_sequence();
  int step = 0;
  session.set_query_observer([&](int layer, std::span<const SeqId>, const float* q) {
    std::copy_n(q, qsize, cap.q.data() + (size_t(step) * c.num_layers + layer) * qsize);
  });
  std::vector<float> logits(c.vocab_size);
  session.prefill(seq, ids.first(prompt), logits.data());
  int32_t next = greedy ? argmax(logits.data(), c.vocab_size) : ids[prompt];
  for (step = 0; step < steps; ++step) {
    session.decode(std::span<const SeqId>(&seq, 1), std::span<const int32_t>(&next, 1),
                   logits.data());
    if (step + 1 < steps)
      next = greedy ? argmax(logits.data(), c.vocab_size) : ids[prompt + step + 1];
  }
  const int T = prompt + steps, G = c.num_kv_heads, d = c.head_dim;
  cap.k.resize(size_t(c.num_layers) * T * G * d);
  cap.v.resize(cap.k.size());
  for (int layer = 0; layer < c.num_layers; ++layer) {
    for (int g = 0; g < G; ++g) {
      const PagedKV kv = session.cache().kv(layer, seq, g);
      for (int t = 0; t < T; ++t) {
        const size_t off = ((size_t(layer) * T + t) * G + g) * d;
        convert_to_f32(kv.key(t), kv.dtype, cap.k.data() + off, d);
        convert_to_f32(kv.value(t), kv.dtype, cap.v.data() + off, d);
      }
    }
  }
  return cap;
}

namespace {

struct Sums {
  double recall = 0, mass = 0, error = 0;
  int n = 0;
};
struct BucketSums {
  double count[4] = {0, 0, 0, 0};
  double sq = 0;
  int64_t elements = 0;
};
// (kind, run, layer, head) and (kind, layer, vector: 0 key, 1 query)
using Key = std::tuple<int, int, int, int>;
using BKey = std::tuple<int, int, int>;

struct Acc {
  std::map<Key, Sums> q;
  std::map<BKey, BucketSums> b;
  void merge(const Acc& o) {
    for (const auto& [k, s] : o.q) {
      Sums& t = q[k];
      t.recall += s.recall;
      t.mass += s.mass;
      t.error += s.error;
      t.n += s.n;
    }
    for (const auto& [k, s] : o.b) {
      BucketSums& t = b[k];
      for (int i = 0; i < 4; ++i) t.count[i] += s.count[i];
      t.sq += s.sq;
      t.elements += s.elements;
    }
  }
};

const char* kind_name(int k) { return k == 0 ? "passkey" : "text"; }
int kind_index(const std::string& kind) { return kind == "passkey" ? 0 : 1; }

std::vector<PolicyRun> sparse_runs(const std::vector<std::string>& policies,
                                   const std::vector<int>& budgets, int page_size) {
  std::vector<PolicyRun> runs;
  for (PolicyRun& r : expand_policies(policies, budgets, page_size)) {
    if (r.is_full()) continue;
    r.config.dense_layers = 0;  // measure every layer
    runs.push_back(std::move(r));
  }
  if (runs.empty()) throw Error("recall: no sparse policy to evaluate (full has no selection)");
  return runs;
}

// A cache holding the capture's keys/values, laid out for `pc` (nullptr: K/V only), prompt
// first, calibrated (if asked) from the prompt's keys as Session::prefill does, then the steps.
std::unique_ptr<PagedKVCache> make_cache(const Capture& c, const PolicyConfig* pc, int page_size,
                                         SeqId& seq) {
  CacheConfig cc;
  cc.num_layers = c.layers;
  cc.num_kv_heads = c.kv_heads;
  cc.head_dim = c.head_dim;
  cc.page_size = page_size;
  cc.num_pages = cc.pages_for(c.prompt + c.steps) + 1;
  cc.dtype = DType::kF16;  // as captured: the values are f16 already, so storing is exact
  cc.store_codes = pc != nullptr && pc->kind == PolicyKind::kAdamas;
  cc.store_page_minmax = pc != nullptr && pc->kind == PolicyKind::kQuest;
  if (pc != nullptr) configure_cache_for(*pc, cc);
  auto cache = std::make_unique<PagedKVCache>(cc);
  seq = cache->add_sequence();
  const size_t row = size_t(c.kv_heads) * c.head_dim;
  for (int l = 0; l < c.layers; ++l) cache->append(l, seq, c.keys(l), c.values(l), c.prompt);
  if (pc != nullptr && pc->kind == PolicyKind::kAdamas && pc->calibrate)
    for (int l = 0; l < c.layers; ++l) cache->calibrate_thresholds(l);
  for (int l = 0; l < c.layers; ++l)
    cache->append(l, seq, c.keys(l) + c.prompt * row, c.values(l) + c.prompt * row, c.steps);
  return cache;
}

void bucket_stats(const Capture& c, Acc& acc) {
  CodeSpec spec;
  spec.head_dim = c.head_dim;
  spec.bits = 2;
  spec.hadamard = true;
  const std::vector<float> th = spec.effective_thresholds();
  const int kind = kind_index(c.kind), d = c.head_dim;
  std::vector<uint8_t> buckets(d);
  auto add = [&](BucketSums& s, const float* x) {
    compute_buckets(spec, th, x, buckets.data());
    for (int i = 0; i < d; ++i) {
      s.count[buckets[i]] += 1;
      s.sq += double{x[i]} * x[i];  // the transform is orthonormal: same sum of squares
    }
    s.elements += d;
  };
  const int T = c.prompt + c.steps;
  for (int l = 0; l < c.layers; ++l) {
    BucketSums& ks = acc.b[{kind, l, 0}];
    for (int t = 0; t < T * c.kv_heads; ++t) add(ks, c.keys(l) + size_t(t) * d);
    BucketSums& qs = acc.b[{kind, l, 1}];
    for (int s = 0; s < c.steps; ++s)
      for (int h = 0; h < c.heads; ++h) add(qs, c.query(s, l) + size_t(h) * d);
  }
}

void evaluate_one(const Capture& c, const std::vector<PolicyRun>& runs, int page_size, Acc& acc,
                  ProgressCounter* counter) {
  const int L = c.layers, G = c.kv_heads, H = c.heads, d = c.head_dim, group = H / G;
  const int kind = kind_index(c.kind);
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  std::vector<int> budgets;
  for (const auto& r : runs)
    if (std::find(budgets.begin(), budgets.end(), r.budget) == budgets.end())
      budgets.push_back(r.budget);
  const int B = static_cast<int>(budgets.size());

  // References for every step: softmax probabilities, dense outputs, oracle sets per budget.
  struct Ref {
    int len = 0;
    std::vector<float> probs;  // [L][H][len]
    std::vector<float> dense;  // [L][H][d]
    std::vector<char> oracle;  // [B][L][H][len]
    std::vector<int> osize;    // [B]
  };
  std::vector<Ref> refs(c.steps);
  {
    SeqId seq;
    auto ref = make_cache(c, nullptr, page_size, seq);
    std::vector<float> scores;
    std::vector<int32_t> idx;
    for (int s = c.steps - 1; s >= 0; --s) {
      Ref& R = refs[s];
      R.len = c.prompt + s + 1;
      const int len = R.len;
      ref->truncate(seq, len);
      R.probs.resize(size_t(L) * H * len);
      R.dense.resize(size_t(L) * H * d);
      R.oracle.assign(size_t(B) * L * H * len, 0);
      R.osize.resize(B);
      scores.resize(size_t(group) * len);
      for (int l = 0; l < L; ++l) {
        for (int g = 0; g < G; ++g) {
          const PagedKV kv = ref->kv(l, seq, g);
          const float* q = c.query(s, l) + size_t(g) * group * d;
          // Exactly the oracle policy's call, so that its selection is reproduced bit for bit.
          key_scores(q, group, kv, scores.data(), len);
          dense_decode_attention(q, group, kv, scale,
                                 R.dense.data() + (size_t(l) * H + g * group) * d);
          for (int hl = 0; hl < group; ++hl) {
            const int h = g * group + hl;
            const float* sc = scores.data() + size_t(hl) * len;
            float* p = R.probs.data() + (size_t(l) * H + h) * len;
            double mx = -INFINITY, total = 0;
            for (int i = 0; i < len; ++i) mx = std::max(mx, double{sc[i]} * scale);
            for (int i = 0; i < len; ++i) total += std::exp(double{sc[i]} * scale - mx);
            for (int i = 0; i < len; ++i)
              p[i] = static_cast<float>(std::exp(double{sc[i]} * scale - mx) / total);
            for (int bi = 0; bi < B; ++bi) {
              const int b = budgets[bi];
              char* o = R.oracle.data() + ((size_t(bi) * L + l) * H + h) * len;
              idx.resize(std::max(b, 1));
              const int n = select_largest(sc, len - 1, std::min(b - 1, len - 1), idx.data());
              for (int i = 0; i < n; ++i) o[idx[i]] = 1;
              o[len - 1] = 1;
              R.osize[bi] = n + 1;
            }
          }
        }
      }
    }
  }

  // Runs grouped by spec: one cache (codes, thresholds, min/max) per spec.
  std::vector<float> out(size_t(H) * d);
  for (size_t r0 = 0; r0 < runs.size();) {
    size_t r1 = r0;
    while (r1 < runs.size() && runs[r1].label == runs[r0].label) ++r1;
    SeqId seq;
    auto cache = make_cache(c, &runs[r0].config, page_size, seq);
    for (int s = c.steps - 1; s >= 0; --s) {
      const Ref& R = refs[s];
      const int len = R.len;
      cache->truncate(seq, len);
      for (size_t r = r0; r < r1; ++r) {
        const int bi = static_cast<int>(std::find(budgets.begin(), budgets.end(), runs[r].budget) -
                                        budgets.begin());
        auto policy = make_policy(runs[r].config);
        policy->check_cache(*cache);
        DecodeAttention attn(*cache, *policy, H, 1);
        for (int l = 0; l < L; ++l) {
          attn.run(l, std::span<const SeqId>(&seq, 1), c.query(s, l), out.data());
          for (int g = 0; g < G; ++g) {
            const HeadScratch& sc = attn.scratch(0, g);
            for (int hl = 0; hl < group; ++hl) {
              const int h = g * group + hl;
              const float* p = R.probs.data() + (size_t(l) * H + h) * len;
              const char* o = R.oracle.data() + ((size_t(bi) * L + l) * H + h) * len;
              double recall = 1, mass = 1;
              if (!sc.dense) {
                const int row = sc.shared ? 0 : hl;
                const int32_t* sel = sc.row(row, runs[r].config.budget);
                const int count = sc.counts[row];
                int hits = 0;
                double m = 0;
                for (int i = 0; i < count; ++i) {
                  hits += o[sel[i]];
                  m += p[sel[i]];
                }
                recall = double(hits) / R.osize[bi];
                mass = m;
              }
              double err = 0, norm = 0;
              const float* a = out.data() + size_t(h) * d;
              const float* b = R.dense.data() + (size_t(l) * H + h) * d;
              for (int i = 0; i < d; ++i) {
                err += double(a[i] - b[i]) * (a[i] - b[i]);
                norm += double{b[i]} * b[i];
              }
              Sums& S = acc.q[{kind, static_cast<int>(r), l, h}];
              S.recall += recall;
              S.mass += mass;
              S.error += norm > 0 ? std::sqrt(err / norm) : std::sqrt(err);
              ++S.n;
            }
          }
        }
      }
    }
    if (counter) counter->add(1);
    r0 = r1;
  }
  bucket_stats(c, acc);
}

int spec_groups(const std::vector<PolicyRun>& runs) {
  int n = 0;
  for (size_t r = 0; r < runs.size(); ++r) n += r == 0 || runs[r].label != runs[r - 1].label;
  return n;
}

void finish(const Acc& acc, const std::vector<PolicyRun>& runs, RecallResult& result) {
  for (const auto& [k, s] : acc.q) {
    const auto [kind, r, l, h] = k;
    RecallRow row;
    row.kind = kind_name(kind);
    row.policy = runs[r].label;
    row.budget = runs[r].budget;
    row.layer = l;
    row.head = h;
    row.queries = s.n;
    row.recall = s.recall / s.n;
    row.mass = s.mass / s.n;
    row.error = s.error / s.n;
    result.rows.push_back(row);
  }
  for (const auto& [k, s] : acc.b) {
    const auto [kind, l, v] = k;
    BucketRow row;
    row.kind = kind_name(kind);
    row.layer = l;
    row.vector = v == 0 ? "key" : "query";
    for (int i = 0; i < 4; ++i) row.share[i] = s.count[i] / std::max<int64_t>(s.elements, 1);
    row.rms = std::sqrt(s.sq / std::max<int64_t>(s.elements, 1));
    row.elements = s.elements;
    result.buckets.push_back(row);
  }
}

}  // namespace

void evaluate_captures(const std::vector<const Capture*>& captures,
                       const std::vector<std::string>& policies, const std::vector<int>& budgets,
                       int page_size, RecallResult& result, const ProgressFn& progress) {
  const auto runs = sparse_runs(policies, budgets, page_size);
  ProgressCounter counter(progress, int64_t(captures.size()) * spec_groups(runs));
  Acc acc;
  for (const Capture* c : captures) {
    if (c->heads % c->kv_heads != 0)
      throw Error(fmt::format("capture: {} query heads are not a multiple of {} KV heads", c->heads,
                              c->kv_heads));
    evaluate_one(*c, runs, page_size, acc, &counter);
    result.sources.push_back(c->source);
  }
  finish(acc, runs, result);
}

RecallResult run_recall_eval(const model::LlamaModel& model, const model::Tokenizer& tok,
                             const RecallOptions& o, const ProgressFn& progress) {
  if (o.steps < 1) throw Error(fmt::format("recall: --steps must be ≥ 1, got {}", o.steps));
  const auto runs = sparse_runs(o.policies, o.budgets, o.page_size);
  struct Source {
    std::string kind, name;
    std::vector<int32_t> ids;
    int prompt;
    bool greedy;
  };
  std::vector<Source> sources;
  for (int L : o.lengths)
    for (size_t di = 0; di < o.depths.size(); ++di) {
      std::seed_seq seq{o.seed, unsigned(L), unsigned(di), 77u};
      std::mt19937 rng(seq);
      const int key = std::uniform_int_distribution<int>(10000, 99999)(rng);
      auto p = cli::make_passkey_prompt(tok, L, o.depths[di], key, 6);
      const int n = static_cast<int>(p.ids.size());
      sources.push_back({"passkey",
                         fmt::format("passkey L={} depth={:.2f} key={}", L, o.depths[di], key),
                         std::move(p.ids), n, true});
    }
  if (o.text_docs > 0) {
    const int need = o.text_tokens + o.steps;
    for (const std::string& doc : read_documents(o.text)) {
      if (static_cast<int>(sources.size()) ==
          static_cast<int>(o.lengths.size() * o.depths.size()) + o.text_docs)
        break;
      std::vector<int32_t> ids = tok.encode_prompt(doc);
      if (static_cast<int>(ids.size()) < need) continue;
      ids.resize(need);
      sources.push_back({"text",
                         fmt::format("text T={} '{}'", o.text_tokens,
                                     doc.substr(0, std::min(doc.find('\n'), size_t{40}))),
                         std::move(ids), o.text_tokens, false});
    }
  }
  const int groups = spec_groups(runs);
  ProgressCounter counter(progress, int64_t(sources.size()) * (groups + 10));
  Acc total;
  std::mutex mu;
  run_jobs(static_cast<int>(sources.size()), o.jobs, [&](int i) {
    const Source& s = sources[i];
    Capture c = capture_decode(model, s.ids, s.prompt, o.steps, s.greedy, o.threads);
    c.kind = s.kind;
    c.source = s.name;
    counter.add(10);
    Acc acc;
    evaluate_one(c, runs, o.page_size, acc, &counter);
    std::lock_guard<std::mutex> lock(mu);
    total.merge(acc);
  });
  RecallResult result;
  for (const auto& s : sources) result.sources.push_back(s.name);
  finish(total, runs, result);
  return result;
}

}  // namespace adamas::eval
