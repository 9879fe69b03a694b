// Policy selections through the stage API (begin → encode → estimate → select), each against a
// brute force computed from the stored keys: adamas (bits × distance × Hadamard × GQA mode),
// oracle, quest, streaming; the shared budget semantics (current token, counts, dense cases).
#include <map>
#include <set>

#include "adamas/core/hadamard.h"
#include "adamas/policy/policy.h"
#include "test_util.h"

namespace adamas::test {
namespace {

struct Selection {
  bool dense = false, shared = false;
  std::vector<std::vector<int32_t>> rows;
};

Selection run_stages(const SelectionPolicy& p, const PagedKVCache& cache, const HeadTask& task) {
  HeadScratch s;
  p.begin(task, s);
  Selection out;
  out.dense = s.dense;
  out.shared = s.shared;
  if (s.dense) return out;
  p.encode(cache, task, s);
  p.estimate(cache, task, s);
  p.select(cache, task, s);
  for (int r = 0; r < s.rows(); ++r) {
    const int32_t* row = s.row(r, p.config().budget);
    out.rows.emplace_back(row, row + s.counts[r]);
  }
  return out;
}

// Positions [0, n) ranked by key(pos) ascending, ties by position; the first k, sorted.
template <class Key>
std::vector<int32_t> brute_top(int n, int k, Key key) {
  std::vector<int32_t> pos = iota_positions(n);
  std::stable_sort(pos.begin(), pos.end(), [&](int32_t a, int32_t b) { return key(a) < key(b); });
  pos.resize(std::min(k, n));
  std::sort(pos.begin(), pos.end());
  return pos;
}

HeadTask task_of(const FilledCache& fc, int layer, int s, int kv_head, const float* q, int nq) {
  HeadTask t;
  t.layer = layer;
  t.seq = fc.seqs[s];
  t.kv_head = kv_head;
  t.q = q;
  t.nq = nq;
  t.length = fc.cache->length(layer, fc.seqs[s]);
  return t;
}

// Adamas: exactly the brute-force top-(budget − 1) by bucket distance among the previous tokens
// (ties to the lower position), plus the current token.
TEST(Selection, AdamasEqualsBruteForceOnBucketDistances) {
  const int d = 64, nq = 3, P = 16;
  const std::vector<int> lengths = {150, 61};
  int combo = 0;
  for (int bits = 1; bits <= 3; ++bits)
    for (bool hadamard : {true, false}) {
      CacheConfig cfg = small_cache_config(d, P, DType::kBF16, /*kv_heads=*/2);
      cfg.codes.bits = bits;
      cfg.codes.hadamard = hadamard;
      FilledCache fc = make_filled_cache(cfg, lengths, 300 + bits * 2 + hadamard, 10.0f);
      // Head 1 gets calibrated thresholds: the policy must use the cache's per-head ones.
      {
        std::vector<float> sample;
        for (int t = 0; t < 100; ++t) {
          std::vector<float> x(fc.key(0, 0, 1, t), fc.key(0, 0, 1, t) + d);
          if (hadamard) hadamard_transform(x.data(), 1, d);
          sample.insert(sample.end(), x.begin(), x.end());
        }
        const auto t = calibrate_thresholds(sample, bits);
        fc.cache->set_thresholds(0, 1, t);
      }
      CodeSpec spec = fc.cache->config().codes;
      std::mt19937 g(400 + bits);
      const auto q = random_normal(g, size_t(nq) * d, 10.0f);
      for (Distance dist : {Distance::kL1, Distance::kL2})
        for (GqaMode gqa : {GqaMode::kPerQueryHead, GqaMode::kGroupShared})
          for (int budget : {1, 2, 17, 60}) {
            ++combo;
            PolicyConfig pc;
            pc.kind = PolicyKind::kAdamas;
            pc.bits = bits;
            pc.hadamard = hadamard;
            pc.distance = dist;
            pc.gqa = gqa;
            pc.budget = budget;
            pc.dense_layers = 0;
            const auto policy = make_policy(pc);
            policy->check_cache(*fc.cache);
            for (size_t s = 0; s < lengths.size(); ++s)
              for (int h = 0; h < 2; ++h) {
                SCOPED_TRACE(pc.describe() + " seq " + std::to_string(s) + " kv head " +
                             std::to_string(h));
                const HeadTask task = task_of(fc, 0, s, h, q.data(), nq);
                const int len = task.length;
                const auto thr_span = fc.cache->thresholds(0, h);
                const std::vector<float> thr(thr_span.begin(), thr_span.end());
                // Brute force distances per head.
                std::vector<std::vector<uint8_t>> kb(len, std::vector<uint8_t>(d));
                for (int t = 0; t < len; ++t)
                  compute_buckets(spec, thr, fc.key(0, s, h, t), kb[t].data());
                std::vector<std::vector<int>> dist_h(nq, std::vector<int>(len, 0));
                for (int hq = 0; hq < nq; ++hq) {
                  std::vector<uint8_t> qb(d);
                  compute_buckets(spec, thr, q.data() + hq * d, qb.data());
                  for (int t = 0; t < len; ++t)
                    for (int i = 0; i < d; ++i) {
                      const int delta = std::abs(int{qb[i]} - int{kb[t][i]});
                      dist_h[hq][t] += dist == Distance::kL1 ? delta : delta * delta;
                    }
                }
                std::vector<std::vector<int32_t>> want;
                if (gqa == GqaMode::kGroupShared) {
                  want.push_back(brute_top(len - 1, budget - 1, [&](int32_t t) {
                    int sum = 0;
                    for (int hq = 0; hq < nq; ++hq) sum += dist_h[hq][t];
                    return sum;
                  }));
                } else {
                  for (int hq = 0; hq < nq; ++hq)
                    want.push_back(
                        brute_top(len - 1, budget - 1, [&](int32_t t) { return dist_h[hq][t]; }));
                }
                for (auto& w : want) w.push_back(len - 1);
                for_each_target([&](int64_t) {
                  const Selection sel = run_stages(*policy, *fc.cache, task);
                  ASSERT_FALSE(sel.dense);
                  EXPECT_EQ(sel.shared, gqa == GqaMode::kGroupShared);
                  ASSERT_EQ(sel.rows.size(), want.size());
                  for (size_t r = 0; r < want.size(); ++r) {
                    EXPECT_EQ(static_cast<int>(sel.rows[r].size()), budget) << "row " << r;
                    EXPECT_EQ(sel.rows[r], want[r]) << "row " << r;
                  }
                });
                if (HasFatalFailure()) return;
              }
          }
    }
  EXPECT_EQ(combo, 3 * 2 * 2 * 2 * 4);
}

// dist=ip with keep_sinks / keep_recent: the first and the most recent tokens are always in,
// the rest is the brute-force top by  offset − Σ_i q̃_i · level steps(b_k(i))  over the ranked
// range (ties to the lower position), the current token last; on calibrated heads (levels =
// bucket means) and on the default ones. Also L1 with the same keeps, through the fused histogram.
TEST(Selection, AdamasIpAndKeptTokensEqualBruteForce) {
  const int d = 64, nq = 2, P = 16;
  const std::vector<int> lengths = {150, 23};
  CacheConfig cfg = small_cache_config(d, P, DType::kF16, /*kv_heads=*/2);
  FilledCache fc = make_filled_cache(cfg, lengths, 77, 3.0f);
  fc.cache->calibrate_thresholds(0);  // both heads: thresholds and bucket means
  fc.cache->set_thresholds(0, 0, fc.cache->thresholds(0, 0));  // head 0: default levels again
  const CodeSpec spec = fc.cache->config().codes;
  std::mt19937 g(78);
  const auto q = random_normal(g, size_t(nq) * d, 2.0f);
  int combo = 0;
  for (Distance dist : {Distance::kIP, Distance::kL1})
    for (GqaMode gqa : {GqaMode::kPerQueryHead, GqaMode::kGroupShared})
      for (auto [sinks, recent] : {std::pair{0, 0}, {4, 0}, {0, 8}, {3, 5}, {40, 40}})
        for (int budget : {2, 9, 30, 100}) {
          ++combo;
          PolicyConfig pc = parse_policy("adamas:dense_layers=0");
          pc.distance = dist;
          pc.gqa = gqa;
          pc.budget = budget;
          pc.keep_sinks = sinks;
          pc.keep_recent = recent;
          const auto policy = make_policy(pc);
          for (size_t s = 0; s < lengths.size(); ++s)
            for (int h = 0; h < 2; ++h) {
              SCOPED_TRACE(pc.describe() + " seq " + std::to_string(s) + " kv head " +
                           std::to_string(h));
              const HeadTask task = task_of(fc, 0, s, h, q.data(), nq);
              const int len = task.length;
              if (budget >= len) continue;
              const auto thr_span = fc.cache->thresholds(0, h);
              const std::vector<float> thr(thr_span.begin(), thr_span.end());
              const auto lev = fc.cache->levels(0, h);
              std::vector<std::vector<uint8_t>> kb(len, std::vector<uint8_t>(d));
              for (int t = 0; t < len; ++t)
                compute_buckets(spec, thr, fc.key(0, s, h, t), kb[t].data());
              const int summed = gqa == GqaMode::kGroupShared ? nq : 1;
              std::vector<std::vector<long>> dh(nq, std::vector<long>(len, 0));
              for (int hq = 0; hq < nq; ++hq) {
                if (dist == Distance::kIP) {
                  const QueryCode qc = encode_query_ip(spec, lev, q.data() + hq * d, summed);
                  std::vector<float> x(q.begin() + hq * d, q.begin() + (hq + 1) * d);
                  hadamard_transform(x.data(), 1, d);
                  float amax = 0;
                  for (float v : x) amax = std::max(amax, std::fabs(v));
                  int cum[4] = {0, qc.steps[0], qc.steps[0] + qc.steps[1],
                                qc.steps[0] + qc.steps[1] + qc.steps[2]};
                  for (int t = 0; t < len; ++t) {
                    long score = 0;
                    for (int i = 0; i < d; ++i)
                      score += std::lrint(x[i] * (kIpQueryMax / amax)) * cum[kb[t][i]];
                    dh[hq][t] = qc.offset - score;
                  }
                } else {
                  std::vector<uint8_t> qb(d);
                  compute_buckets(spec, thr, q.data() + hq * d, qb.data());
                  for (int t = 0; t < len; ++t)
                    for (int i = 0; i < d; ++i) dh[hq][t] += std::abs(int{qb[i]} - int{kb[t][i]});
                }
              }
              const int ks = std::min({sinks, budget - 1, len - 1});
              const int kr = std::min({recent, budget - 1 - ks, len - 1 - ks});
              auto want_row = [&](auto key) {
                std::vector<int32_t> row;
                for (int i = 0; i < ks; ++i) row.push_back(i);
                for (int32_t t : brute_top(len - 1 - kr - ks, budget - 1 - ks - kr,
                                           [&](int32_t t) { return key(t + ks); }))
                  row.push_back(t + ks);
                for (int i = len - 1 - kr; i < len; ++i) row.push_back(i);
                return row;
              };
              std::vector<std::vector<int32_t>> want;
              if (gqa == GqaMode::kGroupShared)
                want.push_back(want_row([&](int32_t t) { return dh[0][t] + dh[1][t]; }));
              else
                for (int hq = 0; hq < nq; ++hq)
                  want.push_back(want_row([&](int32_t t) { return dh[hq][t]; }));
              for_each_target([&](int64_t) {
                const Selection sel = run_stages(*policy, *fc.cache, task);
                ASSERT_FALSE(sel.dense);
                ASSERT_EQ(sel.rows.size(), want.size());
                for (size_t r = 0; r < want.size(); ++r) {
                  EXPECT_EQ(static_cast<int>(sel.rows[r].size()), budget) << "row " << r;
                  EXPECT_EQ(sel.rows[r], want[r]) << "row " << r;
                }
              });
              if (HasFatalFailure()) return;
            }
        }
  EXPECT_EQ(combo, 2 * 2 * 5 * 4);
}

// Oracle: the true top-(budget − 1) previous tokens by q·k (double brute force; group-shared:
// by Σ_h q_h·k), plus the current token: recall 1 against the exact top-k.
TEST(Selection, OracleEqualsExactTopKWithRecallOne) {
  const int d = 64, nq = 4;
  CacheConfig cfg = small_cache_config(d, 16, DType::kF32, 2);
  cfg.store_codes = false;
  const std::vector<int> lengths = {300, 45};
  const FilledCache fc = make_filled_cache(cfg, lengths, 500);
  std::mt19937 g(501);
  const auto q = random_normal(g, size_t(nq) * d, 1.0f);
  for (GqaMode gqa : {GqaMode::kPerQueryHead, GqaMode::kGroupShared})
    for (int budget : {1, 3, 32, 44}) {
      PolicyConfig pc;
      pc.kind = PolicyKind::kOracle;
      pc.gqa = gqa;
      pc.budget = budget;
      pc.dense_layers = 0;
      const auto policy = make_policy(pc);
      for (size_t s = 0; s < lengths.size(); ++s)
        for (int h = 0; h < 2; ++h) {
          SCOPED_TRACE(pc.describe() + " seq " + std::to_string(s) + " head " + std::to_string(h));
          const HeadTask task = task_of(fc, 0, s, h, q.data(), nq);
          const int len = task.length;
          auto score = [&](int hq, int t) {
            double acc = 0;
            for (int i = 0; i < d; ++i) acc += double{q[hq * d + i]} * fc.key(0, s, h, t)[i];
            return acc;
          };
          std::vector<std::vector<int32_t>> want;
          if (gqa == GqaMode::kGroupShared) {
            want.push_back(brute_top(len - 1, budget - 1, [&](int32_t t) {
              double sum = 0;
              for (int hq = 0; hq < nq; ++hq) sum += score(hq, t);
              return -sum;
            }));
          } else {
            for (int hq = 0; hq < nq; ++hq)
              want.push_back(
                  brute_top(len - 1, budget - 1, [&](int32_t t) { return -score(hq, t); }));
          }
          for (auto& w : want) w.push_back(len - 1);
          for_each_target([&](int64_t) {
            const Selection sel = run_stages(*policy, *fc.cache, task);
            ASSERT_FALSE(sel.dense);
            ASSERT_EQ(sel.rows.size(), want.size());
            for (size_t r = 0; r < want.size(); ++r) {
              EXPECT_EQ(sel.rows[r], want[r]) << "row " << r;
              // recall of the exact top-(budget − 1) (+ current token)
              std::set<int32_t> got(sel.rows[r].begin(), sel.rows[r].end());
              int hit = 0;
              for (int32_t p : want[r]) hit += got.count(p);
              EXPECT_EQ(hit, static_cast<int>(want[r].size())) << "recall < 1, row " << r;
            }
          });
        }
    }
}

// Quest: whole pages; the last page always; the other pages the top ones by the brute-force
// upper-bound score; no more tokens than the budget; ascending positions.
TEST(Selection, QuestSelectsWholeTopPagesAndTheLastPage) {
  const int d = 32, nq = 2;
  for (int P : {4, 16}) {
    CacheConfig cfg = small_cache_config(d, P, DType::kF16, 1);
    cfg.store_codes = false;
    const std::vector<int> lengths = {203, 64};
    const FilledCache fc = make_filled_cache(cfg, lengths, 600 + P);
    std::mt19937 g(601 + P);
    const auto q = random_normal(g, size_t(nq) * d, 1.0f);
    for (GqaMode gqa : {GqaMode::kPerQueryHead, GqaMode::kGroupShared})
      for (int budget : {P, 2 * P + 3, 5 * P, 40}) {
        if (budget < P) continue;
        PolicyConfig pc;
        pc.kind = PolicyKind::kQuest;
        pc.gqa = gqa;
        pc.budget = budget;
        pc.dense_layers = 0;
        const auto policy = make_policy(pc);
        policy->check_cache(*fc.cache);
        for (size_t s = 0; s < lengths.size(); ++s) {
          SCOPED_TRACE(pc.describe() + " page " + std::to_string(P) + " seq " + std::to_string(s));
          const HeadTask task = task_of(fc, 0, s, 0, q.data(), nq);
          const int len = task.length, pages = (len + P - 1) / P;
          if (budget >= len) continue;
          auto page_score = [&](int hq, int pi) {
            double sc = 0;
            for (int i = 0; i < d; ++i) {
              double lo = INFINITY, hi = -INFINITY;
              for (int t = pi * P; t < std::min(len, (pi + 1) * P); ++t) {
                lo = std::min(lo, double{fc.key(0, s, 0, t)[i]});
                hi = std::max(hi, double{fc.key(0, s, 0, t)[i]});
              }
              sc += std::max(q[hq * d + i] * lo, q[hq * d + i] * hi);
            }
            return sc;
          };
          const int want_pages = std::max(1, budget / P);
          std::vector<std::vector<int32_t>> want;
          const int rows = gqa == GqaMode::kGroupShared ? 1 : nq;
          for (int r = 0; r < rows; ++r) {
            auto chosen = brute_top(pages - 1, want_pages - 1, [&](int32_t pi) {
              if (gqa == GqaMode::kPerQueryHead) return -page_score(r, pi);
              double sum = 0;
              for (int hq = 0; hq < nq; ++hq) sum += page_score(hq, pi);
              return -sum;
            });
            chosen.push_back(pages - 1);
            std::vector<int32_t> positions;
            for (int32_t pi : chosen)
              for (int t = pi * P; t < std::min(len, (pi + 1) * P); ++t) positions.push_back(t);
            want.push_back(positions);
          }
          const Selection sel = run_stages(*policy, *fc.cache, task);
          ASSERT_FALSE(sel.dense);
          ASSERT_EQ(sel.rows.size(), want.size());
          for (size_t r = 0; r < want.size(); ++r) {
            const auto& row = sel.rows[r];
            EXPECT_LE(static_cast<int>(row.size()), budget);
            EXPECT_TRUE(std::is_sorted(row.begin(), row.end()));
            ASSERT_FALSE(row.empty());
            EXPECT_EQ(row.back(), len - 1) << "current token";
            // whole pages only
            std::map<int, int> per_page;
            for (int32_t t : row) ++per_page[t / P];
            for (auto [pi, n] : per_page)
              EXPECT_EQ(n, std::min(len, (pi + 1) * P) - pi * P) << "page " << pi << " partial";
            EXPECT_EQ(per_page.count(pages - 1), 1u) << "last page missing";
            EXPECT_EQ(row, want[r]) << "row " << r;
          }
        }
      }
  }
}

// Streaming: exactly the first min(sinks, budget − 1) tokens and the most recent rest.
TEST(Selection, StreamingSelectsSinksAndWindow) {
  CacheConfig cfg = small_cache_config(16, 8, DType::kF32, 1);
  cfg.store_codes = false;
  const FilledCache fc = make_filled_cache(cfg, {100}, 700);
  std::vector<float> q(2 * 16, 1.0f);
  for (int sinks : {0, 1, 4, 100})
    for (int budget : {1, 2, 5, 40, 99}) {
      PolicyConfig pc;
      pc.kind = PolicyKind::kStreaming;
      pc.sinks = sinks;
      pc.budget = budget;
      pc.dense_layers = 0;
      const auto policy = make_policy(pc);
      SCOPED_TRACE(pc.describe());
      const Selection sel = run_stages(*policy, *fc.cache, task_of(fc, 0, 0, 0, q.data(), 2));
      ASSERT_FALSE(sel.dense);
      const int k = std::min(sinks, budget - 1);
      std::vector<int32_t> want;
      for (int i = 0; i < k; ++i) want.push_back(i);
      for (int i = 100 - (budget - k); i < 100; ++i) want.push_back(i);
      for (const auto& row : sel.rows) EXPECT_EQ(row, want);
    }
}

TEST(Selection, DenseCasesAndEmptySequence) {
  CacheConfig cfg = small_cache_config(16, 8, DType::kF32, 1, 3);
  const FilledCache fc = make_filled_cache(cfg, {20}, 800);
  std::vector<float> q(16, 1.0f);
  for (const char* spec : {"adamas:budget=20,dense_layers=0", "oracle:budget=25,dense_layers=0",
                           "quest:budget=20,dense_layers=0", "streaming:budget=21,dense_layers=0",
                           "full:budget=2,dense_layers=0", "adamas:budget=4,dense_layers=3",
                           "quest:budget=8,dense_layers=1"}) {
    SCOPED_TRACE(spec);
    const auto policy = make_policy(parse_policy(spec));
    const int layer = std::string(spec).find("dense_layers=3") != std::string::npos ? 2 : 0;
    EXPECT_TRUE(run_stages(*policy, *fc.cache, task_of(fc, layer, 0, 0, q.data(), 1)).dense);
  }
  const auto sparse = make_policy(parse_policy("quest:budget=8,dense_layers=1"));
  EXPECT_FALSE(run_stages(*sparse, *fc.cache, task_of(fc, 1, 0, 0, q.data(), 1)).dense);
  HeadTask empty = task_of(fc, 0, 0, 0, q.data(), 1);
  empty.length = 0;
  HeadScratch s;
  EXPECT_THAT(error_message([&] { sparse->begin(empty, s); }), HasSubstr("empty sequence"));
  // A dense task has no selection: its rows are null with count 0 (`adamas recall --policies
  // full` offset the null data() of the empty indices, which clang's UBSan reports).
  const auto full = make_policy(parse_policy("full"));
  const std::vector<float> q2(32, 1.0f);
  HeadScratch d;
  full->begin(task_of(fc, 0, 0, 0, q2.data(), 2), d);
  EXPECT_TRUE(d.dense);
  ASSERT_EQ(d.counts.size(), 2u);
  EXPECT_EQ(d.counts[1], 0);
  EXPECT_EQ(d.row(1, 16), nullptr);
}

}  // namespace
}  // namespace adamas::test
