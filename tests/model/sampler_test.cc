// Sampling: greedy, temperature, top-k, top-p, seeds.
#include "adamas/model/sampler.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <limits>

#include "model_test_util.h"

namespace adamas::model::test {
namespace {

TEST(Sampler, GreedyIsArgmaxWithTiesToLowestId) {
  Sampler s({});
  const std::vector<float> l = {0.1f, 3.0f, -1.0f, 3.0f};
  EXPECT_EQ(s.sample(l), 1);
}

TEST(Sampler, TopKOneAndTinyTopPAreGreedy) {
  const std::vector<float> l = {0.1f, 0.3f, 2.0f, 1.9f};
  Sampler k1({1.5f, 1, 1.0f, 7});
  Sampler p0({1.5f, 0, 1e-6f, 7});
  for (int i = 0; i < 50; ++i) {
    EXPECT_EQ(k1.sample(l), 2);
    EXPECT_EQ(p0.sample(l), 2);
  }
}

TEST(Sampler, TemperatureSamplesTheSoftmax) {
  const std::vector<float> l = {std::log(0.5f), std::log(0.3f), std::log(0.2f)};
  Sampler s({1.0f, 0, 1.0f, 123});
  std::vector<int> count(3);
  const int n = 20000;
  for (int i = 0; i < n; ++i) ++count[s.sample(l)];
  EXPECT_NEAR(count[0] / double(n), 0.5, 0.02);
  EXPECT_NEAR(count[1] / double(n), 0.3, 0.02);
  EXPECT_NEAR(count[2] / double(n), 0.2, 0.02);
  // top_p = 0.75 keeps {0, 1} (0.5 + 0.3 ≥ 0.75), renormalized to 5/8, 3/8.
  Sampler p({1.0f, 0, 0.75f, 5});
  std::vector<int> c2(3);
  for (int i = 0; i < n; ++i) ++c2[p.sample(l)];
  EXPECT_EQ(c2[2], 0);
  EXPECT_NEAR(c2[0] / double(n), 0.625, 0.02);
  // top_k = 2 gives the same set.
  Sampler k({1.0f, 2, 1.0f, 5});
  for (int i = 0; i < 2000; ++i) EXPECT_NE(k.sample(l), 2);
}

TEST(Sampler, SameSeedSameSequence) {
  std::vector<float> l(50);
  for (int i = 0; i < 50; ++i) l[i] = std::sin(float(i));
  Sampler a({0.8f, 20, 0.9f, 42}), b({0.8f, 20, 0.9f, 42}), c({0.8f, 20, 0.9f, 43});
  std::vector<int> ra, rb, rc;
  for (int i = 0; i < 100; ++i) {
    ra.push_back(a.sample(l));
    rb.push_back(b.sample(l));
    rc.push_back(c.sample(l));
  }
  EXPECT_EQ(ra, rb);
  EXPECT_NE(ra, rc);
}

TEST(Sampler, InvalidSettingsAreNamed) {
  EXPECT_THAT(test_error([] {
                Sampler s({-1.0f, 0, 1.0f, 0});
              }),
              ::testing::HasSubstr("temperature"));
  EXPECT_THAT(test_error([] { Sampler s({1.0f, 0, 0.0f, 0}); }), ::testing::HasSubstr("top_p"));
}

// NaN once broke the orderings (and made draws ignore the seed): refused, like +Inf; −Inf is a
// masked token, but not every token may be masked.
TEST(Sampler, NonFiniteLogitsAreRefusedAndMaskedTokensNeverDrawn) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  for (float temperature : {0.0f, 1.0f}) {
    Sampler s({temperature, 0, 1.0f, 3});
    EXPECT_THAT(test_error([&] {
                  s.sample(std::vector<float>{0.5f, nan, 1.0f});
                }),
                ::testing::HasSubstr("logit nan of token 1 is not a number or +Inf"));
    EXPECT_THAT(test_error([&] {
                  s.sample(std::vector<float>{0.5f, inf});
                }),
                ::testing::HasSubstr("token 1 is not a number or +Inf"));
    EXPECT_THAT(test_error([&] {
                  s.sample(std::vector<float>{-inf, -inf});
                }),
                ::testing::HasSubstr("every logit is -Inf"));
  }
  const std::vector<float> masked = {-inf, 0.0f, -inf, 0.0f};
  Sampler a({1.0f, 0, 1.0f, 11}), b({1.0f, 0, 1.0f, 11});
  for (int i = 0; i < 200; ++i) {
    const int x = a.sample(masked);
    EXPECT_TRUE(x == 1 || x == 3) << x;
    EXPECT_EQ(x, b.sample(masked));  // same seed, same draws
  }
}

}  // namespace
}  // namespace adamas::model::test
