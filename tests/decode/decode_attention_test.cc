// decode_attention.h: a layer's decode step over a ragged batch with GQA, for every policy:
// budget ≥ length is dense; dense_layers; sparse outputs equal exact attention over the
// selection; streaming's indices; per-head vs group-shared selection; batch == each sequence
// alone; constructor and run() errors.
#include "adamas/decode/decode_attention.h"

#include "adamas/core/attention.h"
#include "adamas/core/topk.h"
#include "test_util.h"

namespace adamas::test {
namespace {

constexpr const char* kPolicies[] = {"full", "oracle", "adamas", "quest", "streaming"};

struct Batch {
  FilledCache fc;
  int num_q_heads = 0;
  std::vector<float> q;  // [batch][num_q_heads][head_dim]
  int d() const { return fc.config().head_dim; }
  int group() const { return num_q_heads / fc.config().num_kv_heads; }
  const float* q_of(int b, int qh) const { return q.data() + (size_t(b) * num_q_heads + qh) * d(); }
};

// A cache configured for `policy` (codes as adamas reads them), filled with a ragged batch.
Batch make_batch(const PolicyConfig& policy, CacheConfig cfg, const std::vector<int>& lengths,
                 int num_q_heads, uint32_t seed) {
  configure_cache_for(policy, cfg);
  Batch s;
  s.fc = make_filled_cache(cfg, lengths, seed);
  s.num_q_heads = num_q_heads;
  std::mt19937 g(seed + 1);
  s.q = random_normal(g, lengths.size() * num_q_heads * cfg.head_dim, 1.0f);
  return s;
}

PolicyConfig policy_of(const std::string& spec) {
  PolicyConfig p = parse_policy(spec);
  // Thresholds that spread unit-variance keys over the 2-bit buckets.
  if (p.kind == PolicyKind::kAdamas && p.bits == 2) p.thresholds = {-0.7f, 0.f, 0.7f};
  return p;
}

std::vector<float> run(DecodeAttention& da, const Batch& s, int layer,
                       const std::vector<SeqId>& seqs, const float* q) {
  std::vector<float> out(seqs.size() * s.num_q_heads * s.d(), NAN);
  da.run(layer, seqs, q, out.data());
  return out;
}

// Exact attention (double) of query head qh of batch entry b over positions idx of `layer`.
std::vector<float> brute(const Batch& s, int layer, int b, int qh,
                         const std::vector<int32_t>& idx) {
  const int h = qh / s.group();
  return brute_attention(s.q_of(b, qh), s.fc.keys(layer, b, h), s.fc.values(layer, b, h), s.d(),
                         idx, 1.0 / std::sqrt(double(s.d())));
}

// The selection row that query head j (within its group) used.
std::vector<int32_t> row_of(const HeadScratch& sc, int j, int budget) {
  const int r = sc.shared ? 0 : j;
  const int32_t* p = sc.row(r, budget);
  return std::vector<int32_t>(p, p + sc.counts[r]);
}

// Every output row equals exact attention over what the scratch says was attended.
void expect_outputs_match_selection(const DecodeAttention& da, const Batch& s, int layer,
                                    const std::vector<float>& out, int budget, double tol) {
  const int H = s.fc.config().num_kv_heads;
  for (size_t b = 0; b < s.fc.seqs.size(); ++b)
    for (int h = 0; h < H; ++h) {
      const HeadScratch& sc = da.scratch(static_cast<int>(b), h);
      const int len = s.fc.cache->length(layer, s.fc.seqs[b]);
      for (int j = 0; j < s.group(); ++j) {
        const int qh = h * s.group() + j;
        const auto idx = sc.dense ? iota_positions(len) : row_of(sc, j, budget);
        const auto want = brute(s, layer, b, qh, idx);
        EXPECT_LT(rel_error(out.data() + (b * s.num_q_heads + qh) * s.d(), want.data(), s.d()), tol)
            << "batch " << b << " q head " << qh << (sc.dense ? " (dense)" : " (sparse)");
      }
    }
}

// The fast dense kernel on the same data, per (sequence, KV head, group).
std::vector<float> dense_reference(const Batch& s, int layer) {
  const int H = s.fc.config().num_kv_heads, d = s.d();
  std::vector<float> out(s.fc.seqs.size() * s.num_q_heads * d);
  for (size_t b = 0; b < s.fc.seqs.size(); ++b)
    for (int h = 0; h < H; ++h)
      dense_decode_attention(s.q_of(b, h * s.group()), s.group(),
                             s.fc.cache->kv(layer, s.fc.seqs[b], h), 1.0f / std::sqrt(float(d)),
                             out.data() + (b * s.num_q_heads + size_t(h) * s.group()) * d);
  return out;
}

CacheConfig base_config(int d = 64, int P = 16, DType dt = DType::kF16, int kv_heads = 2,
                        int layers = 1) {
  return small_cache_config(d, P, dt, kv_heads, layers);
}

// Budget ≥ length: every policy attends densely and the output equals dense attention exactly
// (same kernel) and the brute force within fp32 tolerance; ragged batch, GQA group of 4.
TEST(DecodeAttention, BudgetAtLeastLengthEqualsDenseForEveryPolicy) {
  const std::vector<int> lengths = {1, 17, 100, 64};
  for (const char* name : kPolicies)
    for (const char* gqa : {"per-head", "shared"}) {
      const PolicyConfig pc =
          policy_of(std::string(name) + ":budget=100,dense_layers=0,gqa=" + gqa);
      SCOPED_TRACE(pc.describe());
      const Batch s = make_batch(pc, base_config(), lengths, 8, 10);
      const auto policy = make_policy(pc);
      DecodeAttention da(*s.fc.cache, *policy, 8);
      for_each_target([&](int64_t) {
        const auto out = run(da, s, 0, s.fc.seqs, s.q.data());
        const auto dense = dense_reference(s, 0);
        EXPECT_EQ(rel_error(out, dense), 0.0);
        for (size_t b = 0; b < lengths.size(); ++b)
          for (int h = 0; h < 2; ++h) EXPECT_TRUE(da.scratch(b, h).dense);
        expect_outputs_match_selection(da, s, 0, out, pc.budget, 1e-5);
      });
    }
}

// Selection + sparse attention with a budget ≥ length: top-k of any scores returns every
// position, and sparse attention over it equals dense, for a ragged batch under GQA.
TEST(DecodeAttention, FullSelectionThroughSparseAttentionEqualsDense) {
  const std::vector<int> lengths = {1, 2, 17, 100, 250};
  const Batch s =
      make_batch(policy_of("oracle"), base_config(64, 16, DType::kBF16), lengths, 8, 20);
  std::mt19937 g(21);
  for_each_target([&](int64_t) {
    for (size_t b = 0; b < lengths.size(); ++b)
      for (int h = 0; h < 2; ++h) {
        const PagedKV kv = s.fc.cache->kv(0, s.fc.seqs[b], h);
        const int len = lengths[b];
        std::vector<uint16_t> dist(len);
        for (auto& x : dist) x = static_cast<uint16_t>(random_int(g, 0, 300));
        std::vector<float> scores(len);
        key_scores(s.q_of(b, h * 4), 1, kv, scores.data(), len);
        for (int budget : {len, len + 1, 4 * len}) {
          std::vector<int32_t> idx(budget), idx2(budget);
          ASSERT_EQ(select_smallest(dist.data(), len, budget, idx.data()), len);
          ASSERT_EQ(select_largest(scores.data(), len, budget, idx2.data()), len);
          idx.resize(len);
          idx2.resize(len);
          EXPECT_EQ(idx, iota_positions(len));
          EXPECT_EQ(idx2, iota_positions(len));
          std::vector<float> sparse(4 * 64), dense(4 * 64);
          const float scale = 1.0f / 8.0f;
          sparse_decode_attention(s.q_of(b, h * 4), 4, kv, idx.data(), len, scale, sparse.data());
          dense_decode_attention(s.q_of(b, h * 4), 4, kv, scale, dense.data());
          EXPECT_LT(rel_error(sparse, dense), 1e-6) << "batch " << b << " head " << h;
          for (int j = 0; j < 4; ++j)
            EXPECT_LT(rel_error(sparse.data() + j * 64, brute(s, 0, b, h * 4 + j, idx).data(), 64),
                      1e-5);
        }
      }
  });
}

// A ragged batch where the budget falls between the lengths: short sequences are dense, long ones
// sparse, each output exactly attention over its own selection.
TEST(DecodeAttention, MixedDenseAndSparseInOneBatch) {
  const std::vector<int> lengths = {5, 300, 40, 41, 129};
  for (const char* name : {"oracle", "adamas", "quest", "streaming"})
    for (const char* gqa : {"per-head", "shared"}) {
      const PolicyConfig pc = policy_of(std::string(name) + ":budget=40,dense_layers=0,gqa=" + gqa);
      SCOPED_TRACE(pc.describe());
      const Batch s = make_batch(pc, base_config(), lengths, 8, 30);
      const auto policy = make_policy(pc);
      DecodeAttention da(*s.fc.cache, *policy, 8);
      for_each_target([&](int64_t) {
        const auto out = run(da, s, 0, s.fc.seqs, s.q.data());
        for (size_t b = 0; b < lengths.size(); ++b)
          for (int h = 0; h < 2; ++h) EXPECT_EQ(da.scratch(b, h).dense, lengths[b] <= 40) << b;
        expect_outputs_match_selection(da, s, 0, out, pc.budget, 1e-5);
      });
    }
}

// Every sparse selection: current token included; counts == budget (≤ budget for quest); distinct
// positions in range.
TEST(DecodeAttention, SelectionsRespectTheBudgetSemantics) {
  const std::vector<int> lengths = {77, 300};
  for (const char* name : {"oracle", "adamas", "quest", "streaming"})
    for (const char* gqa : {"per-head", "shared"})
      for (int budget : {16, 33, 64}) {
        const PolicyConfig pc = policy_of(
            std::string(name) + ":dense_layers=0,budget=" + std::to_string(budget) + ",gqa=" + gqa);
        SCOPED_TRACE(pc.describe());
        const Batch s = make_batch(pc, base_config(), lengths, 4, 40);
        const auto policy = make_policy(pc);
        DecodeAttention da(*s.fc.cache, *policy, 4);
        run(da, s, 0, s.fc.seqs, s.q.data());
        for (size_t b = 0; b < lengths.size(); ++b)
          for (int h = 0; h < 2; ++h) {
            const HeadScratch& sc = da.scratch(b, h);
            ASSERT_FALSE(sc.dense);
            EXPECT_EQ(sc.rows(), std::string(gqa) == "shared" ? 1 : 2);
            for (int r = 0; r < sc.rows(); ++r) {
              const auto row = row_of(sc, r, budget);
              if (pc.kind == PolicyKind::kQuest) {
                EXPECT_LE(static_cast<int>(row.size()), budget);
                EXPECT_GT(static_cast<int>(row.size()), budget - 16);
              } else {
                EXPECT_EQ(static_cast<int>(row.size()), budget);
              }
              EXPECT_TRUE(std::is_sorted(row.begin(), row.end()));
              EXPECT_EQ(std::adjacent_find(row.begin(), row.end()), row.end()) << "duplicates";
              EXPECT_GE(row.front(), 0);
              EXPECT_EQ(row.back(), lengths[b] - 1) << "current token missing";
            }
          }
      }
}

TEST(DecodeAttention, DenseLayersAreHonoured) {
  const std::vector<int> lengths = {120, 60};
  for (const char* name : {"oracle", "adamas", "quest", "streaming"}) {
    const PolicyConfig pc = policy_of(std::string(name) + ":budget=32,dense_layers=2");
    SCOPED_TRACE(pc.describe());
    const Batch s =
        make_batch(pc, base_config(64, 16, DType::kF16, 2, /*layers=*/3), lengths, 4, 50);
    const auto policy = make_policy(pc);
    DecodeAttention da(*s.fc.cache, *policy, 4);
    for (int layer = 0; layer < 3; ++layer) {
      SCOPED_TRACE("layer " + std::to_string(layer));
      const auto out = run(da, s, layer, s.fc.seqs, s.q.data());
      const auto dense = dense_reference(s, layer);
      for (size_t b = 0; b < lengths.size(); ++b)
        for (int h = 0; h < 2; ++h) EXPECT_EQ(da.scratch(b, h).dense, layer < 2);
      if (layer < 2) {
        EXPECT_EQ(rel_error(out, dense), 0.0);
      } else {
        EXPECT_GT(rel_error(out, dense), 1e-4) << "layer 2 should be sparse";
      }
      expect_outputs_match_selection(da, s, layer, out, pc.budget, 1e-5);
    }
  }
}

TEST(DecodeAttention, StreamingAttendsExactlySinksAndWindow) {
  const std::vector<int> lengths = {50, 200, 33};
  for (int sinks : {0, 4, 10}) {
    const PolicyConfig pc =
        policy_of("streaming:budget=32,dense_layers=0,sinks=" + std::to_string(sinks));
    const Batch s = make_batch(pc, base_config(32, 8, DType::kF32), lengths, 6, 60 + sinks);
    const auto policy = make_policy(pc);
    DecodeAttention da(*s.fc.cache, *policy, 6);
    for_each_target([&](int64_t) {
      const auto out = run(da, s, 0, s.fc.seqs, s.q.data());
      for (size_t b = 0; b < lengths.size(); ++b)
        for (int h = 0; h < 2; ++h) {
          const HeadScratch& sc = da.scratch(b, h);
          std::vector<int32_t> want;
          for (int i = 0; i < sinks; ++i) want.push_back(i);
          for (int i = lengths[b] - (32 - sinks); i < lengths[b]; ++i) want.push_back(i);
          for (int r = 0; r < sc.rows(); ++r) EXPECT_EQ(row_of(sc, r, 32), want) << b << " " << h;
        }
      expect_outputs_match_selection(da, s, 0, out, 32, 1e-5);
    });
  }
}

// Per-head GQA selects one row per query head (and they differ for different queries);
// group-shared selects one row that all heads of the group attend to.
TEST(DecodeAttention, PerHeadVersusGroupShared) {
  const std::vector<int> lengths = {400};
  for (const char* name : {"oracle", "adamas", "quest"}) {
    for (const char* gqa : {"per-head", "shared"}) {
      const PolicyConfig pc = policy_of(std::string(name) + ":budget=48,dense_layers=0,gqa=" + gqa);
      SCOPED_TRACE(pc.describe());
      const Batch s = make_batch(pc, base_config(64, 16, DType::kBF16, 1), lengths, 4, 70);
      const auto policy = make_policy(pc);
      DecodeAttention da(*s.fc.cache, *policy, 4);
      for_each_target([&](int64_t) {
        const auto out = run(da, s, 0, s.fc.seqs, s.q.data());
        const HeadScratch& sc = da.scratch(0, 0);
        if (pc.gqa == GqaMode::kPerQueryHead) {
          ASSERT_FALSE(sc.shared);
          ASSERT_EQ(sc.rows(), 4);
          int differing = 0;
          for (int j = 1; j < 4; ++j) differing += row_of(sc, j, 48) != row_of(sc, 0, 48);
          EXPECT_GT(differing, 0) << "independent random queries chose identical rows";
        } else {
          ASSERT_TRUE(sc.shared);
          ASSERT_EQ(sc.rows(), 1);
        }
        expect_outputs_match_selection(da, s, 0, out, 48, 1e-5);
      });
    }
  }
}

// A single query head per KV head (MHA) selects one row in either mode.
TEST(DecodeAttention, SingleQueryHeadPerKvHead) {
  const PolicyConfig pc = policy_of("adamas:budget=20,dense_layers=0");
  const Batch s = make_batch(pc, base_config(64, 16, DType::kF16, 2), {90, 31}, 2, 80);
  const auto policy = make_policy(pc);
  DecodeAttention da(*s.fc.cache, *policy, 2);
  const auto out = run(da, s, 0, s.fc.seqs, s.q.data());
  for (int b = 0; b < 2; ++b)
    for (int h = 0; h < 2; ++h) EXPECT_EQ(da.scratch(b, h).rows(), 1);
  expect_outputs_match_selection(da, s, 0, out, 20, 1e-5);
}

// Running a ragged batch (2 threads) gives, for each sequence, exactly what running that sequence
// alone (1 thread) gives: outputs and selections.
TEST(DecodeAttention, RaggedBatchEqualsEachSequenceAlone) {
  const std::vector<int> lengths = {1, 37, 200, 129, 64};
  for (const char* name : kPolicies)
    for (const char* gqa : {"per-head", "shared"}) {
      const PolicyConfig pc = policy_of(std::string(name) + ":budget=24,dense_layers=0,gqa=" + gqa);
      SCOPED_TRACE(pc.describe());
      const Batch s = make_batch(pc, base_config(64, 16, DType::kF16, 2), lengths, 8, 90);
      const auto policy = make_policy(pc);
      for_each_target([&](int64_t) {
        DecodeAttention batch(*s.fc.cache, *policy, 8, /*threads=*/2);
        const auto out = run(batch, s, 0, s.fc.seqs, s.q.data());
        for (size_t b = 0; b < lengths.size(); ++b) {
          DecodeAttention alone(*s.fc.cache, *policy, 8, /*threads=*/1);
          const std::vector<SeqId> one = {s.fc.seqs[b]};
          const auto o = run(alone, s, 0, one, s.q_of(b, 0));
          for (int i = 0; i < 8 * 64; ++i)
            ASSERT_EQ(std::bit_cast<uint32_t>(o[i]), std::bit_cast<uint32_t>(out[b * 8 * 64 + i]))
                << "batch entry " << b << " element " << i;
          for (int h = 0; h < 2; ++h) {
            const HeadScratch& x = batch.scratch(b, h);
            const HeadScratch& y = alone.scratch(0, h);
            ASSERT_EQ(x.dense, y.dense);
            if (x.dense) continue;
            ASSERT_EQ(x.rows(), y.rows());
            for (int r = 0; r < x.rows(); ++r) EXPECT_EQ(row_of(x, r, 24), row_of(y, r, 24));
          }
        }
      });
    }
}

// Repeated runs reuse the scratch: a second step with a longer sequence (one more token) gives the
// same as a fresh DecodeAttention.
TEST(DecodeAttention, RepeatedRunsReuseScratchCorrectly) {
  const PolicyConfig pc = policy_of("adamas:budget=16,dense_layers=0");
  CacheConfig cfg = base_config(64, 16, DType::kF16, 2);
  configure_cache_for(pc, cfg);
  Batch s = make_batch(pc, cfg, {60, 3}, 4, 95);
  const auto policy = make_policy(pc);
  DecodeAttention da(*s.fc.cache, *policy, 4);
  run(da, s, 0, s.fc.seqs, s.q.data());
  std::mt19937 g(96);
  for (int step = 0; step < 20; ++step) {
    for (size_t b = 0; b < 2; ++b) {
      const auto k = random_normal(g, 2 * 64), v = random_normal(g, 2 * 64);
      s.fc.cache->append(0, s.fc.seqs[b], k.data(), v.data(), 1);
      for (int h = 0; h < 2; ++h)
        for (int i = 0; i < 64; ++i) {
          s.fc.k[0][b][h].push_back(round_to(DType::kF16, k[h * 64 + i]));
          s.fc.v[0][b][h].push_back(round_to(DType::kF16, v[h * 64 + i]));
        }
    }
    const auto out = run(da, s, 0, s.fc.seqs, s.q.data());
    DecodeAttention fresh(*s.fc.cache, *policy, 4);
    const auto want = run(fresh, s, 0, s.fc.seqs, s.q.data());
    ASSERT_EQ(rel_error(out, want), 0.0) << "step " << step;
    expect_outputs_match_selection(da, s, 0, out, 16, 1e-5);
  }
}

TEST(DecodeAttention, StageTimesAccumulate) {
  const PolicyConfig pc = policy_of("adamas:budget=16,dense_layers=0");
  const Batch s = make_batch(pc, base_config(), {100}, 2, 97);
  const auto policy = make_policy(pc);
  DecodeAttention da(*s.fc.cache, *policy, 2);
  StageTimes t;
  std::vector<float> out(2 * 64);
  da.run(0, s.fc.seqs, s.q.data(), out.data(), &t);
  da.run(0, s.fc.seqs, s.q.data(), out.data(), &t);
  EXPECT_GE(t.encode, 0.0);
  EXPECT_GE(t.estimate, 0.0);
  EXPECT_GE(t.topk, 0.0);
  EXPECT_GE(t.attention, 0.0);
  EXPECT_GT(t.encode + t.estimate + t.topk + t.attention, 0.0);
}

TEST(DecodeAttention, EmptyBatchDoesNothing) {
  const PolicyConfig pc = policy_of("adamas:budget=16,dense_layers=0");
  const Batch s = make_batch(pc, base_config(), {40}, 4, 99);
  const auto policy = make_policy(pc);
  DecodeAttention da(*s.fc.cache, *policy, 4);
  StageTimes t;
  float out = 3.0f;
  da.run(0, std::span<const SeqId>(), s.q.data(), &out, &t);
  EXPECT_EQ(out, 3.0f);
  EXPECT_THAT(error_message([&] { da.scratch(0, 0); }), HasSubstr("batch entry 0"));
}

TEST(DecodeAttention, ConstructorErrors) {
  CacheConfig cfg = base_config(64, 16, DType::kF16, 4);
  cfg.num_pages = 4;
  const PagedKVCache cache(cfg);
  const auto full = make_policy(parse_policy("full"));
  EXPECT_THAT(error_message([&] { DecodeAttention(cache, *full, 6); }),
              AllOf(HasSubstr("num_q_heads (6)"), HasSubstr("multiple of num_kv_heads (4)")));
  EXPECT_THAT(error_message([&] { DecodeAttention(cache, *full, 0); }),
              HasSubstr("num_q_heads (0)"));
  EXPECT_THAT(error_message([&] { DecodeAttention(cache, *full, -4); }), HasSubstr("num_q_heads"));
  EXPECT_NO_THROW(DecodeAttention(cache, *full, 4));
  EXPECT_NO_THROW(DecodeAttention(cache, *full, 32));
  // adamas reading a cache whose codes have other bits
  const auto adamas3 = make_policy(parse_policy("adamas:bits=3"));
  EXPECT_THAT(error_message([&] { DecodeAttention(cache, *adamas3, 8); }),
              AllOf(HasSubstr("3-bit"), HasSubstr("2-bit")));
  // quest with a budget below one page
  const auto quest = make_policy(parse_policy("quest:budget=8"));
  EXPECT_THAT(error_message([&] { DecodeAttention(cache, *quest, 8); }),
              AllOf(HasSubstr("budget 8"), HasSubstr("16 tokens")));
}

TEST(DecodeAttention, RunErrors) {
  const PolicyConfig pc = policy_of("oracle:budget=8,dense_layers=0");
  CacheConfig cfg = base_config(32, 8, DType::kF32, 2);
  cfg.num_pages = 8;
  PagedKVCache cache(cfg);
  const SeqId a = cache.add_sequence(), empty = cache.add_sequence();
  std::vector<float> kv(20 * 2 * 32, 1.0f);
  cache.append(0, a, kv.data(), kv.data(), 20);
  const auto policy = make_policy(pc);
  DecodeAttention da(cache, *policy, 4);
  std::vector<float> q(2 * 4 * 32, 0.5f), out(2 * 4 * 32);
  const std::vector<SeqId> with_empty = {a, empty};
  EXPECT_THAT(error_message([&] { da.run(0, with_empty, q.data(), out.data()); }),
              HasSubstr("empty sequence"));
  const std::vector<SeqId> unknown = {a, 42};
  EXPECT_THAT(error_message([&] { da.run(0, unknown, q.data(), out.data()); }),
              HasSubstr("sequence id 42"));
  const std::vector<SeqId> ok = {a};
  EXPECT_THAT(error_message([&] { da.run(3, ok, q.data(), out.data()); }), HasSubstr("layer 3"));
  da.run(0, ok, q.data(), out.data());
  EXPECT_NO_THROW(da.scratch(0, 1));
  EXPECT_THAT(error_message([&] { da.scratch(1, 0); }), HasSubstr("batch entry 1"));
}

// scratch(b, kv_head) with kv_head outside [0, num_kv_heads) must not hand out another batch
// entry's selection: with two sequences, scratch(0, 2) would silently be scratch(1, 0).
TEST(DecodeAttention, ScratchRejectsKvHeadOutOfRange) {
  const PolicyConfig pc = policy_of("oracle:budget=8,dense_layers=0");
  const Batch s = make_batch(pc, base_config(32, 8, DType::kF32, 2), {20, 30}, 2, 98);
  const auto policy = make_policy(pc);
  DecodeAttention da(*s.fc.cache, *policy, 2);
  run(da, s, 0, s.fc.seqs, s.q.data());
  EXPECT_THAT(error_message([&] { da.scratch(0, 2); }), HasSubstr("KV head 2"));
  EXPECT_THAT(error_message([&] { da.scratch(1, -1); }), HasSubstr("KV head -1"));
}

}  // namespace
}  // namespace adamas::test
