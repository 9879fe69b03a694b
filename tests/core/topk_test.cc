// topk.h: select_smallest / select_largest and their references vs a brute force that sorts
// (value, position) pairs; ties, edge sizes, the ≥ 4095 fallback, NaN, errors.
#include "adamas/core/topk.h"

#include "test_util.h"

namespace adamas::test {
namespace {

std::vector<int32_t> brute_smallest(const std::vector<uint16_t>& v, int k) {
  std::vector<std::pair<int, int32_t>> p;
  for (size_t i = 0; i < v.size(); ++i) p.emplace_back(v[i], static_cast<int32_t>(i));
  std::sort(p.begin(), p.end());
  std::vector<int32_t> out;
  for (int i = 0; i < std::min<int>(k, static_cast<int>(p.size())); ++i) out.push_back(p[i].second);
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<int32_t> brute_largest(const std::vector<float>& v, int k) {
  std::vector<std::pair<float, int32_t>> p;  // (−value, pos), NaN as −inf
  for (size_t i = 0; i < v.size(); ++i)
    p.emplace_back(std::isnan(v[i]) ? INFINITY : -v[i], static_cast<int32_t>(i));
  std::sort(p.begin(), p.end());
  std::vector<int32_t> out;
  for (int i = 0; i < std::min<int>(k, static_cast<int>(p.size())); ++i) out.push_back(p[i].second);
  std::sort(out.begin(), out.end());
  return out;
}

constexpr int32_t kGuard = -777;

template <class T>
using SelectFn = int (*)(const T*, int, int, int32_t*);

template <class T>
std::vector<int32_t> run_select(std::type_identity_t<SelectFn<T>> f, const std::vector<T>& v,
                                int k) {
  const int cap = std::max(k, 0) + 8;
  std::vector<int32_t> out(cap, kGuard);
  const int n = static_cast<int>(v.size());
  const int c = f(v.data(), n, k, out.data());
  EXPECT_EQ(c, std::min(k, n));
  for (int i = std::max(c, 0); i < cap; ++i)
    EXPECT_EQ(out[i], kGuard) << "wrote past the count at " << i;
  out.resize(std::max(c, 0));
  return out;
}

// select_smallest with the counting pass done by the caller (exact counts of every value).
// shift > 0: a coarse histogram, hist[v >> shift] (what estimate fuses for dist=ip).
std::vector<int32_t> run_with_histogram(const std::vector<uint16_t>& v, int k, int shift = 0) {
  const int n = static_cast<int>(v.size());
  int top = 0;
  for (uint16_t x : v) top = std::max<int>(top, x >> shift);
  std::vector<uint32_t> hist(top + 1, 0);
  for (uint16_t x : v) ++hist[x >> shift];
  const int cap = k + 8;
  std::vector<int32_t> out(cap, kGuard);
  const int c = select_smallest(v.data(), n, k, hist.data(), top + 1, out.data(), shift);
  EXPECT_EQ(c, std::min(k, n));
  for (int i = std::max(c, 0); i < cap; ++i)
    EXPECT_EQ(out[i], kGuard) << "wrote past the count at " << i;
  out.resize(std::max(c, 0));
  return out;
}

std::vector<int> ks_for(int n, std::mt19937& g) {
  std::vector<int> ks = {0, 1, n - 1, n, n + 1, n + 100, n / 2, n / 3};
  if (n > 0) ks.push_back(random_int(g, 0, n));
  std::vector<int> out;
  for (int k : ks)
    if (k >= 0) out.push_back(k);
  return out;
}

enum class Dist { kWide, kTies, kAllEqual, kLarge, kMixedLarge, kAroundFallback };

std::vector<uint16_t> make_u16(std::mt19937& g, int n, Dist d) {
  std::vector<uint16_t> v(n);
  for (auto& x : v) {
    switch (d) {
      case Dist::kWide:
        x = static_cast<uint16_t>(random_int(g, 0, 65535));
        break;
      case Dist::kTies:
        x = static_cast<uint16_t>(random_int(g, 0, 3));
        break;
      case Dist::kAllEqual:
        x = 9;
        break;
      case Dist::kLarge:
        x = static_cast<uint16_t>(random_int(g, 4095, 4105));
        break;
      case Dist::kMixedLarge:
        x = static_cast<uint16_t>(random_int(g, 0, 1) ? random_int(g, 0, 10)
                                                      : random_int(g, 60000, 65535));
        break;
      case Dist::kAroundFallback:
        x = static_cast<uint16_t>(random_int(g, 4090, 4100));
        break;
    }
  }
  return v;
}

TEST(TopK, SelectSmallestMatchesBruteForce) {
  std::mt19937 g(1);
  for (int n : {0, 1, 2, 3, 7, 64, 100, 1000, 5000}) {
    for (Dist dist : {Dist::kWide, Dist::kTies, Dist::kAllEqual, Dist::kLarge, Dist::kMixedLarge,
                      Dist::kAroundFallback}) {
      const auto v = make_u16(g, n, dist);
      for (int k : ks_for(n, g)) {
        SCOPED_TRACE("n " + std::to_string(n) + " k " + std::to_string(k) + " dist " +
                     std::to_string(static_cast<int>(dist)));
        const auto want = brute_smallest(v, k);
        EXPECT_EQ(run_select(ref::select_smallest, v, k), want) << "ref";
        for_each_target([&](int64_t) {
          EXPECT_EQ(run_select(select_smallest, v, k), want) << "fast";
          EXPECT_EQ(run_with_histogram(v, k), want) << "fast, given histogram";
          for (int shift : {1, 4, 9})
            EXPECT_EQ(run_with_histogram(v, k, shift), want) << "coarse histogram >> " << shift;
        });
      }
    }
  }
}

// The histogram is kept between calls and cleared lazily: a call with large values followed by
// calls with small ones (and the other way round) must not see stale counts.
TEST(TopK, SelectSmallestRepeatedCallsDoNotLeakState) {
  std::mt19937 g(2);
  for (int round = 0; round < 60; ++round) {
    const Dist dist = static_cast<Dist>(round % 6);
    const int n = random_int(g, 1, 700);
    const auto v = make_u16(g, n, dist);
    const int k = random_int(g, 0, n);
    SCOPED_TRACE("round " + std::to_string(round));
    for_each_target(
        [&](int64_t) { EXPECT_EQ(run_select(select_smallest, v, k), brute_smallest(v, k)); });
  }
}

TEST(TopK, SelectSmallestWideRangesFindTheKthInsideACoarseBin) {
  // Value ranges wider than the 4096 counting bins: the k-th smallest shares its bin with others.
  std::vector<uint16_t> v = {5000, 4095, 3, 65535, 4096, 4095, 0, 7000, 4094, 4095};
  std::mt19937 g(3);
  std::vector<uint16_t> w(3000);
  for (auto& x : w) x = static_cast<uint16_t>(random_int(g, 4000, 65535));
  for_each_target([&](int64_t) {
    for (int k = 0; k <= static_cast<int>(v.size()); ++k) {
      SCOPED_TRACE("k " + std::to_string(k));
      EXPECT_EQ(run_select(select_smallest, v, k), brute_smallest(v, k));
      EXPECT_EQ(run_with_histogram(v, k), brute_smallest(v, k));
    }
    for (int k : {1, 50, 100, 1500, 2999}) {
      EXPECT_EQ(run_select(select_smallest, w, k), brute_smallest(w, k));
      EXPECT_EQ(run_with_histogram(w, k), brute_smallest(w, k));
    }
  });
}

// The histogram overload needs counts of every value: one that stops short is an error.
TEST(TopK, SelectSmallestWithTooSmallHistogramThrows) {
  const std::vector<uint16_t> v = {5, 9, 7, 9, 1};
  std::vector<uint32_t> hist(6, 0);  // values 7 and 9 are not counted
  for (uint16_t x : v)
    if (x < 6) ++hist[x];
  int32_t out[8];
  EXPECT_THAT(error_message([&] { select_smallest(v.data(), 5, 4, hist.data(), 6, out); }),
              AllOf(HasSubstr("6 bins"), HasSubstr("n = 5")));
  // enough counted values for k: fine
  EXPECT_EQ(select_smallest(v.data(), 5, 2, hist.data(), 6, out), 2);
  EXPECT_EQ(out[0], 0);
  EXPECT_EQ(out[1], 4);
}

TEST(TopK, TiesGoToLowerPositions) {
  const std::vector<uint16_t> v = {2, 1, 1, 0, 1, 1, 2, 0};
  // 0s at 3, 7; then 1s at 1, 2, 4, 5
  for_each_target([&](int64_t) {
    EXPECT_EQ(run_select(select_smallest, v, 3), (std::vector<int32_t>{1, 3, 7}));
    EXPECT_EQ(run_select(select_smallest, v, 5), (std::vector<int32_t>{1, 2, 3, 4, 7}));
    EXPECT_EQ(run_with_histogram(v, 5), (std::vector<int32_t>{1, 2, 3, 4, 7}));
    // Long runs of ties across SIMD vectors: the first k tied positions, wherever they fall.
    std::vector<uint16_t> runs(300, 3);
    for (int i = 0; i < 300; i += 7) runs[i] = 2;
    for (int k : {1, 40, 43, 44, 45, 100, 299})
      EXPECT_EQ(run_select(select_smallest, runs, k), brute_smallest(runs, k)) << "k " << k;
  });
  const std::vector<float> f = {1.f, 3.f, 3.f, 2.f, 3.f, 1.f};
  EXPECT_EQ(run_select(select_largest, f, 2), (std::vector<int32_t>{1, 2}));
  EXPECT_EQ(run_select(select_largest, f, 4), (std::vector<int32_t>{1, 2, 3, 4}));
  EXPECT_EQ(run_select(select_largest, f, 5), (std::vector<int32_t>{0, 1, 2, 3, 4}));
  const std::vector<float> eq(10, 0.5f);
  EXPECT_EQ(run_select(select_largest, eq, 3), (std::vector<int32_t>{0, 1, 2}));
  const std::vector<uint16_t> eq16(10, 4);
  EXPECT_EQ(run_select(select_smallest, eq16, 3), (std::vector<int32_t>{0, 1, 2}));
}

TEST(TopK, SelectLargestMatchesBruteForce) {
  std::mt19937 g(4);
  for (int n : {0, 1, 2, 3, 7, 64, 100, 1000, 5000}) {
    for (int kind = 0; kind < 4; ++kind) {
      std::vector<float> v(n);
      for (auto& x : v) {
        switch (kind) {
          case 0:
            x = std::normal_distribution<float>(0, 100)(g);
            break;
          case 1:
            x = static_cast<float>(random_int(g, 0, 3));
            break;  // many ties
          case 2:
            x = -1.5f;
            break;  // all equal
          case 3:
            x = static_cast<float>(random_int(g, -2, 2)) * 1e30f;
            break;
        }
      }
      for (int k : ks_for(n, g)) {
        SCOPED_TRACE("n " + std::to_string(n) + " k " + std::to_string(k) + " kind " +
                     std::to_string(kind));
        const auto want = brute_largest(v, k);
        EXPECT_EQ(run_select(select_largest, v, k), want) << "fast";
        EXPECT_EQ(run_select(ref::select_largest, v, k), want) << "ref";
      }
    }
  }
}

TEST(TopK, SelectLargestTreatsNaNAsMinusInfinity) {
  const std::vector<float> v = {NAN, 1.f, -INFINITY, NAN, INFINITY, -1e30f, 0.f, NAN};
  // Order: +inf(4) > 1(1) > 0(6) > -1e30(5) > {NaN(0), -inf(2), NaN(3), NaN(7)} by position.
  const std::vector<std::vector<int32_t>> want = {{},
                                                  {4},
                                                  {1, 4},
                                                  {1, 4, 6},
                                                  {1, 4, 5, 6},
                                                  {0, 1, 4, 5, 6},
                                                  {0, 1, 2, 4, 5, 6},
                                                  {0, 1, 2, 3, 4, 5, 6},
                                                  {0, 1, 2, 3, 4, 5, 6, 7}};
  for (int k = 0; k <= 8; ++k) {
    SCOPED_TRACE("k " + std::to_string(k));
    EXPECT_EQ(run_select(select_largest, v, k), want[k]);
    EXPECT_EQ(run_select(ref::select_largest, v, k), want[k]);
    EXPECT_EQ(brute_largest(v, k), want[k]);
  }
  // Random data with NaNs sprinkled in.
  std::mt19937 g(5);
  std::vector<float> w(500);
  for (auto& x : w) x = random_int(g, 0, 4) == 0 ? NAN : std::normal_distribution<float>()(g);
  for (int k : {1, 10, 300, 450, 499})
    EXPECT_EQ(run_select(select_largest, w, k), brute_largest(w, k)) << "k " << k;
}

TEST(TopK, NegativeKThrows) {
  const std::vector<uint16_t> v = {1, 2, 3};
  const std::vector<float> f = {1.f, 2.f, 3.f};
  int32_t out[4];
  const auto msg = AllOf(HasSubstr("≥ 0"), HasSubstr("-1"));
  EXPECT_THAT(error_message([&] { select_smallest(v.data(), 3, -1, out); }), msg);
  EXPECT_THAT(error_message([&] { select_largest(f.data(), 3, -1, out); }), msg);
  EXPECT_THAT(error_message([&] { ref::select_smallest(v.data(), 3, -1, out); }), msg);
  EXPECT_THAT(error_message([&] { ref::select_largest(f.data(), 3, -1, out); }), msg);
  EXPECT_THAT(error_message([&] { select_smallest(v.data(), -2, 1, out); }), HasSubstr("-2"));
  const uint32_t hist[4] = {0, 1, 1, 1};
  EXPECT_THAT(error_message([&] { select_smallest(v.data(), 3, -1, hist, 4, out); }), msg);
}

}  // namespace
}  // namespace adamas::test
