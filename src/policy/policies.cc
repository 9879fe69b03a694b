// The five selection policies. Each selects `budget − 1` positions among [0, length − 1) and then
// adds the current token (length − 1), so every sparse policy has the same budget semantics.
#include <algorithm>

#include "adamas/core/attention.h"
#include "adamas/core/estimate.h"
#include "adamas/core/quest.h"
#include "adamas/core/topk.h"
#include "adamas/policy/policy.h"
#include "common/check.h"

namespace adamas {
namespace {

// Appends the current token to a row of selected positions (all < length − 1, ascending).
void add_current(const HeadTask& t, HeadScratch& s, int r, int count, int budget) {
  s.indices[static_cast<size_t>(r) * budget + count] = t.length - 1;
  s.counts[r] = count + 1;
}

class FullPolicy final : public SelectionPolicy {
 public:
  using SelectionPolicy::SelectionPolicy;
  void estimate(const PagedKVCache&, const HeadTask&, HeadScratch&) const override {}
  void select(const PagedKVCache&, const HeadTask&, HeadScratch&) const override {}
};

class AdamasPolicy final : public SelectionPolicy {
 public:
  using SelectionPolicy::SelectionPolicy;

  void check_cache(const PagedKVCache& cache) const override {
    const CacheConfig& c = cache.config();
    ADAMAS_CHECK(c.store_codes, "policy adamas needs a cache that stores key codes");
    ADAMAS_CHECK(c.codes.bits == config_.bits && c.codes.hadamard == config_.hadamard,
                 "policy adamas wants {}-bit codes {} Hadamard, the cache holds {}-bit codes {}",
                 config_.bits, config_.hadamard ? "with" : "without", c.codes.bits,
                 c.codes.hadamard ? "with" : "without");
  }

  void encode(const PagedKVCache& cache, const HeadTask& t, HeadScratch& s) const override {
    const CodeSpec& spec = cache.config().codes;
    s.qcodes.resize(t.nq);
    if (config_.distance == Distance::kIP) {
      const auto levels = cache.levels(t.layer, t.kv_head);
      const int summed = s.shared ? t.nq : 1;
      for (int h = 0; h < t.nq; ++h)
        s.qcodes[h] = encode_query_ip(spec, levels, t.q + h * spec.head_dim, summed);
      return;
    }
    const auto thresholds = cache.thresholds(t.layer, t.kv_head);
    for (int h = 0; h < t.nq; ++h) {
      s.qcodes[h] = encode_query(spec, thresholds, t.q + h * spec.head_dim);
    }
  }

  void estimate(const PagedKVCache& cache, const HeadTask& t, HeadScratch& s) const override {
    const CodeSpec& spec = cache.config().codes;
    s.distances.resize(static_cast<size_t>(s.rows()) * t.length);
    s.histogram.assign(
        static_cast<size_t>(s.rows()) * histogram_size(spec, config_.distance, t.nq, s.shared), 0);
    estimate_distances(spec, config_.distance, s.qcodes.data(), t.nq,
                       cache.codes(t.layer, t.seq, t.kv_head), s.shared, s.distances.data(),
                       t.length, s.histogram.data());
  }

  // Row layout: keep_sinks first tokens, the ranked choice, keep_recent tokens, the current one.
  void select(const PagedKVCache& cache, const HeadTask& t, HeadScratch& s) const override {
    const int b = config_.budget, past = t.length - 1;
    const int sinks = std::min({config_.keep_sinks, b - 1, past});
    const int recent = std::min({config_.keep_recent, b - 1 - sinks, past - sinks});
    const int lo = sinks, hi = past - recent;  // ranked range [lo, hi)
    const int bins = histogram_size(cache.config().codes, config_.distance, t.nq, s.shared);
    const int shift = histogram_shift(config_.distance);
    for (int r = 0; r < s.rows(); ++r) {
      const uint16_t* dist = s.distances.data() + size_t(r) * t.length;
      int32_t* out = s.indices.data() + size_t(r) * b;
      for (int i = 0; i < sinks; ++i) out[i] = i;
      uint32_t* hist = s.histogram.data() + size_t(r) * bins;
      for (int i = 0; i < lo; ++i) --hist[dist[i] >> shift];  // kept or current: not ranked
      for (int i = hi; i < t.length; ++i) --hist[dist[i] >> shift];
      int c = select_smallest(dist + lo, hi - lo, b - 1 - sinks - recent, hist, bins, out + sinks,
                              shift);
      if (lo > 0)
        for (int i = 0; i < c; ++i) out[sinks + i] += lo;
      c += sinks;
      for (int i = hi; i < past; ++i) out[c++] = i;
      add_current(t, s, r, c, b);
    }
  }
};

class OraclePolicy final : public SelectionPolicy {
 public:
  using SelectionPolicy::SelectionPolicy;

  void estimate(const PagedKVCache& cache, const HeadTask& t, HeadScratch& s) const override {
    s.scores.resize(static_cast<size_t>(t.nq) * t.length);
    key_scores(t.q, t.nq, cache.kv(t.layer, t.seq, t.kv_head), s.scores.data(), t.length);
    if (s.shared) {  // the group's summed scores: (Σ_h q_h) · k
      for (int h = 1; h < t.nq; ++h)
        for (int i = 0; i < t.length; ++i) s.scores[i] += s.scores[size_t(h) * t.length + i];
    }
  }

  void select(const PagedKVCache&, const HeadTask& t, HeadScratch& s) const override {
    const int b = config_.budget;
    for (int r = 0; r < s.rows(); ++r) {
      const int c = select_largest(s.scores.data() + size_t(r) * t.length, t.length - 1, b - 1,
                                   s.indices.data() + size_t(r) * b);
      add_current(t, s, r, c, b);
    }
  }
};

// Quest: whole pages by upper-bound score, floor(budget / P) pages, the current page always.
class QuestPolicy final : public SelectionPolicy {
 public:
  using SelectionPolicy::SelectionPolicy;

  void check_cache(const PagedKVCache& cache) const override {
    ADAMAS_CHECK(cache.config().store_page_minmax, "policy quest needs page min/max in the cache");
    ADAMAS_CHECK(config_.budget >= cache.config().page_size,
                 "policy quest: budget {} is smaller than one page ({} tokens)", config_.budget,
                 cache.config().page_size);
  }

  void estimate(const PagedKVCache& cache, const HeadTask& t, HeadScratch& s) const override {
    const int P = cache.config().page_size;
    const int pages = (t.length + P - 1) / P;
    s.scores.resize(static_cast<size_t>(s.rows()) * pages);
    quest_page_scores(t.q, t.nq, cache.minmax(t.layer, t.seq, t.kv_head), s.shared, s.scores.data(),
                      pages);
  }

  void select(const PagedKVCache& cache, const HeadTask& t, HeadScratch& s) const override {
    const int P = cache.config().page_size, b = config_.budget;
    ADAMAS_CHECK(b >= P, "policy quest: budget {} is smaller than one page ({} tokens)", b, P);
    const int pages = (t.length + P - 1) / P;
    const int want = b / P;
    thread_local std::vector<int32_t> chosen;
    chosen.resize(want);
    for (int r = 0; r < s.rows(); ++r) {
      int n =
          select_largest(s.scores.data() + size_t(r) * pages, pages - 1, want - 1, chosen.data());
      chosen[n++] = pages - 1;
      int32_t* out = s.indices.data() + size_t(r) * b;
      int c = 0;
      for (int i = 0; i < n; ++i) {
        for (int pos = chosen[i] * P; pos < std::min(t.length, (chosen[i] + 1) * P); ++pos) {
          out[c++] = pos;
        }
      }
      s.counts[r] = c;
    }
  }
};

// StreamingLLM: the first `sinks` tokens and the most recent budget − sinks (current included).
class StreamingPolicy final : public SelectionPolicy {
 public:
  using SelectionPolicy::SelectionPolicy;
  void estimate(const PagedKVCache&, const HeadTask&, HeadScratch&) const override {}
  void select(const PagedKVCache&, const HeadTask& t, HeadScratch& s) const override {
    const int b = config_.budget;
    const int sinks = std::min(config_.sinks, b - 1);
    const int window = b - sinks;  // budget < length here, so the two ranges are disjoint
    for (int r = 0; r < s.rows(); ++r) {
      int32_t* out = s.indices.data() + size_t(r) * b;
      int c = 0;
      for (int i = 0; i < sinks; ++i) out[c++] = i;
      for (int i = t.length - window; i < t.length; ++i) out[c++] = i;
      s.counts[r] = c;
    }
  }
};

}  // namespace

std::unique_ptr<SelectionPolicy> make_policy(const PolicyConfig& config) {
  config.validate();
  switch (config.kind) {
    case PolicyKind::kFull:
      return std::make_unique<FullPolicy>(config);
    case PolicyKind::kOracle:
      return std::make_unique<OraclePolicy>(config);
    case PolicyKind::kAdamas:
      return std::make_unique<AdamasPolicy>(config);
    case PolicyKind::kQuest:
      return std::make_unique<QuestPolicy>(config);
    case PolicyKind::kStreaming:
      return std::make_unique<StreamingPolicy>(config);
  }
  throw Error("unknown policy kind");
}

void configure_cache_for(const PolicyConfig& policy, CacheConfig& cache) {
  if (policy.kind != PolicyKind::kAdamas) return;
  cache.store_codes = true;
  cache.codes.bits = policy.bits;
  cache.codes.hadamard = policy.hadamard;
  cache.codes.thresholds = policy.thresholds;
}

}  // namespace adamas
