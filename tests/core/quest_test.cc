// quest.h: the page score is an upper bound of q·k for every key of the page (partially filled
// last page included), equals the formula on brute-force min/max, and sum_heads adds the rows.
#include "adamas/core/quest.h"

#include "test_util.h"

namespace adamas::test {
namespace {

TEST(Quest, PageScoreBoundsEveryKeyAndMatchesFormula) {
  for (DType dt : {DType::kF32, DType::kF16, DType::kBF16}) {
    for (int P : {1, 5, 16, 64}) {
      SCOPED_TRACE(std::string(dtype_str(dt)) + " page " + std::to_string(P));
      CacheConfig cfg = small_cache_config(64, P, dt, /*kv_heads=*/2);
      cfg.store_codes = false;
      const std::vector<int> lengths = {1, 37, 200};  // last pages partially filled
      const FilledCache fc = make_filled_cache(cfg, lengths, 500 + P, 2.0f);
      std::mt19937 g(600 + P);
      const int nq = 3, d = 64;
      const auto q = random_normal(g, size_t(nq) * d, 1.0f);
      for (size_t s = 0; s < lengths.size(); ++s)
        for (int kvh = 0; kvh < 2; ++kvh) {
          const PagedMinMax mm = fc.cache->minmax(0, fc.seqs[s], kvh);
          const int len = lengths[s], pages = (len + P - 1) / P;
          ASSERT_EQ(mm.length, len);
          const size_t stride = pages + 2;
          std::vector<float> per_head(nq * stride, -5.f), summed(pages + 2, -5.f);
          quest_page_scores(q.data(), nq, mm, false, per_head.data(), stride);
          quest_page_scores(q.data(), nq, mm, true, summed.data(), 0);
          EXPECT_EQ(summed[pages], -5.f) << "summed row written past the pages";
          for (int pi = 0; pi < pages; ++pi) {
            // Brute-force channel min/max of the page's stored keys.
            std::vector<double> lo(d, INFINITY), hi(d, -INFINITY);
            for (int t = pi * P; t < std::min(len, (pi + 1) * P); ++t)
              for (int i = 0; i < d; ++i) {
                lo[i] = std::min(lo[i], double{fc.key(0, s, kvh, t)[i]});
                hi[i] = std::max(hi[i], double{fc.key(0, s, kvh, t)[i]});
              }
            double sum = 0;
            for (int h = 0; h < nq; ++h) {
              const float* qh = q.data() + h * d;
              double formula = 0, mag = 0;
              for (int i = 0; i < d; ++i) {
                formula += std::max(qh[i] * lo[i], qh[i] * hi[i]);
                mag += std::abs(qh[i]) * std::max(std::abs(lo[i]), std::abs(hi[i]));
              }
              const float score = per_head[h * stride + pi];
              ASSERT_NEAR(score, formula, 1e-5 * mag) << "page " << pi << " head " << h;
              sum += score;
              for (int t = pi * P; t < std::min(len, (pi + 1) * P); ++t) {
                double dot = 0;
                for (int i = 0; i < d; ++i) dot += double{qh[i]} * fc.key(0, s, kvh, t)[i];
                ASSERT_GE(score + 1e-5 * mag, dot) << "page " << pi << " key " << t;
              }
              if (P == 1) {
                EXPECT_NEAR(score, formula, 1e-5 * mag);  // bound is exact for 1 key
              }
            }
            EXPECT_NEAR(summed[pi], sum, 1e-5 * (std::abs(sum) + 1)) << "page " << pi;
          }
        }
    }
  }
}

TEST(Quest, SingleKeyPageScoreEqualsDotProduct) {
  CacheConfig cfg = small_cache_config(32, 1, DType::kF32);
  cfg.store_codes = false;
  const FilledCache fc = make_filled_cache(cfg, {20}, 9, 1.0f);
  std::mt19937 g(10);
  const auto q = random_normal(g, 32, 1.0f);
  std::vector<float> s(20);
  quest_page_scores(q.data(), 1, fc.cache->minmax(0, fc.seqs[0], 0), false, s.data(), 20);
  for (int t = 0; t < 20; ++t) {
    double dot = 0;
    for (int i = 0; i < 32; ++i) dot += double{q[i]} * fc.key(0, 0, 0, t)[i];
    EXPECT_NEAR(s[t], dot, 1e-5);
  }
}

TEST(Quest, BadArgumentsThrow) {
  CacheConfig cfg = small_cache_config(32, 4, DType::kF32);
  const FilledCache fc = make_filled_cache(cfg, {9}, 11);
  std::vector<float> q(32, 1.f), out(8);
  PagedMinMax mm = fc.cache->minmax(0, fc.seqs[0], 0);
  EXPECT_THAT(error_message([&] { quest_page_scores(q.data(), 0, mm, false, out.data(), 3); }),
              HasSubstr("nq = 0"));
  mm.page_size = 0;
  EXPECT_THAT(error_message([&] { quest_page_scores(q.data(), 1, mm, false, out.data(), 3); }),
              HasSubstr("page_size 0"));
}

}  // namespace
}  // namespace adamas::test
