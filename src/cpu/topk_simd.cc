// select_smallest for uint16 distances: a counting pass finds the threshold value tau (the k-th
// smallest), then a SIMD pass collects the positions below tau plus the first ties at tau.
// Budgets are far smaller than contexts, so almost every vector of the second pass holds no
// candidate and costs one compare.
#include <algorithm>
#include <vector>

#include "adamas/core/topk.h"
#include "common/check.h"
#include "core/topk_checks.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "cpu/topk_simd.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace adamas::cpu {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Writes, in position order, every j with values[j] < tau and the first `ties` j with
// values[j] == tau; stops after k positions. Returns the count.
int Collect(const uint16_t* HWY_RESTRICT values, int n, uint16_t tau, int ties, int k,
            int32_t* HWY_RESTRICT out) {
  const hn::ScalableTag<uint16_t> d16;
  const int N = static_cast<int>(hn::Lanes(d16));
  const auto vtau = hn::Set(d16, tau);
  int c = 0;
  auto scalar = [&](int j) {
    const bool take = values[j] < tau || (values[j] == tau && ties > 0);
    ties -= take && values[j] == tau;
    out[c] = j;
    c += take;
  };
  int j = 0;
  for (; j + N <= n && c < k; j += N) {
    const auto v = hn::LoadU(d16, values + j);
    const auto hit = ties > 0 ? hn::Or(hn::Lt(v, vtau), hn::Eq(v, vtau)) : hn::Lt(v, vtau);
    if (hn::AllFalse(d16, hit)) continue;
    uint8_t bits[(hn::MaxLanes(d16) + 7) / 8 + 8] = {};
    hn::StoreMaskBits(d16, hit, bits);
    for (int byte = 0; byte * 8 < N && c < k; ++byte) {
      for (unsigned m = bits[byte]; m != 0 && c < k; m &= m - 1)
        scalar(j + byte * 8 + __builtin_ctz(m));
    }
  }
  for (; j < n && c < k; ++j) scalar(j);
  return c;
}

}  // namespace HWY_NAMESPACE
}  // namespace adamas::cpu
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace adamas {
namespace cpu {
HWY_EXPORT(Collect);
}  // namespace cpu

int select_smallest(const uint16_t* values, int n, int k, int32_t* out) {
  if (int all = check_topk_args(n, k, out); all >= 0) return all;
  if (k == 0) return 0;
  // Counting pass: histogram clamped to kBins − 1 (distances are small: the L1 of 2-bit codes at
  // d = 128 is ≤ 384), in two interleaved copies to break store-to-load dependencies. The
  // histogram is all zeros between calls: only the bins that were used are cleared.
  constexpr int kBins = 4096;
  thread_local std::vector<int32_t> hist(2 * kBins, 0);
  int i = 0, top = 0;
  for (; i + 1 < n; i += 2) {
    const int a = std::min<int>(values[i], kBins - 1), b = std::min<int>(values[i + 1], kBins - 1);
    ++hist[a];
    ++hist[kBins + b];
    top = std::max(top, std::max(a, b));
  }
  if (i < n) {
    const int a = std::min<int>(values[i], kBins - 1);
    ++hist[a];
    top = std::max(top, a);
  }
  // tau: the smallest value with count(v ≤ tau) ≥ k.
  int below = 0, tau = 0;
  for (;; ++tau) {
    const int c = hist[tau] + hist[kBins + tau];
    if (below + c >= k) break;
    below += c;
  }
  std::fill(hist.begin(), hist.begin() + top + 1, 0);
  std::fill(hist.begin() + kBins, hist.begin() + kBins + top + 1, 0);
  if (tau == kBins - 1) {  // rare: the k-th smallest is ≥ kBins − 1; find it exactly
    std::vector<uint16_t> big;
    for (int j = 0; j < n; ++j)
      if (values[j] >= kBins - 1) big.push_back(values[j]);
    std::nth_element(big.begin(), big.begin() + (k - below - 1), big.end());
    tau = big[k - below - 1];
    below = 0;
    for (int j = 0; j < n; ++j) below += values[j] < tau;
  }
  return HWY_DYNAMIC_DISPATCH(cpu::Collect)(values, n, static_cast<uint16_t>(tau), k - below, k,
                                            out);
}

int select_smallest(const uint16_t* values, int n, int k, const uint32_t* hist, int hist_size,
                    int32_t* out) {
  if (int all = check_topk_args(n, k, out); all >= 0) return all;
  if (k == 0) return 0;
  int below = 0, tau = 0;
  for (;; ++tau) {
    ADAMAS_CHECK(tau < hist_size, "histogram of {} bins counts fewer than n = {} values", hist_size,
                 n);
    if (below + static_cast<int>(hist[tau]) >= k) break;
    below += static_cast<int>(hist[tau]);
  }
  return HWY_DYNAMIC_DISPATCH(cpu::Collect)(values, n, static_cast<uint16_t>(tau), k - below, k,
                                            out);
}

}  // namespace adamas
#endif  // HWY_ONCE
