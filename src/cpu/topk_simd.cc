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

// Appends to `members` every values[j] in [a, b] (the values of one coarse histogram bin). Few
// values fall in a bin, so almost every vector costs two compares and no store.
void BinMembers(const uint16_t* HWY_RESTRICT values, int n, uint16_t a, uint16_t b,
                std::vector<uint16_t>* members) {
  const hn::ScalableTag<uint16_t> d16;
  const int N = static_cast<int>(hn::Lanes(d16));
  // v ∈ [a, b] ⟺ v − a < b − a + 1 in wrapping unsigned arithmetic (b − a < 2^15 here).
  const auto va = hn::Set(d16, a), width = hn::Set(d16, static_cast<uint16_t>(b - a + 1));
  int j = 0;
  for (; j + N <= n; j += N) {
    const auto v = hn::LoadU(d16, values + j);
    if (hn::AllFalse(d16, hn::Lt(hn::Sub(v, va), width))) continue;
    for (int i = j; i < j + N; ++i)
      if (values[i] >= a && values[i] <= b) members->push_back(values[i]);
  }
  for (; j < n; ++j)
    if (values[j] >= a && values[j] <= b) members->push_back(values[j]);
}

}  // namespace HWY_NAMESPACE
}  // namespace adamas::cpu
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace adamas {
namespace cpu {
HWY_EXPORT(Collect);
HWY_EXPORT(BinMembers);
}  // namespace cpu

namespace {

// The k smallest, given the bin of the k-th: bins are (v − lo) >> shift, `below` values lie in
// lower bins. With shift > 0 the bin holds several values: the k-th is found among its members.
int collect_from_bin(const uint16_t* values, int n, int k, int below, int bin, int lo, int shift,
                     int32_t* out) {
  int tau = lo + (bin << shift);
  if (shift > 0) {
    thread_local std::vector<uint16_t> members;
    members.clear();
    const int a = lo + (bin << shift), b = std::min(65535, a + (1 << shift) - 1);
    HWY_DYNAMIC_DISPATCH(cpu::BinMembers)
    (values, n, static_cast<uint16_t>(a), static_cast<uint16_t>(b), &members);
    ADAMAS_CHECK(static_cast<int>(members.size()) >= k - below,
                 "histogram bin {} counts more values than the row holds", bin);
    std::nth_element(members.begin(), members.begin() + (k - below - 1), members.end());
    tau = members[k - below - 1];
    for (uint16_t v : members) below += v < tau;
  }
  return HWY_DYNAMIC_DISPATCH(cpu::Collect)(values, n, static_cast<uint16_t>(tau), k - below, k,
                                            out);
}

}  // namespace

int select_smallest(const uint16_t* values, int n, int k, int32_t* out) {
  if (int all = check_topk_args(n, k, out); all >= 0) return all;
  if (k == 0) return 0;
  // Counting pass over (v − min) >> shift, with shift the smallest that fits the value range in
  // kBins bins (0 for L1/L2 distances, whose range is small; a few bits for dist=ip, whose values
  // span 16 bits). Two interleaved copies break store-to-load dependencies. The histogram is all
  // zeros between calls: only the bins that were used are cleared.
  constexpr int kBins = 4096;
  thread_local std::vector<int32_t> hist(2 * kBins, 0);
  int lo = values[0], hi = values[0];
  for (int j = 1; j < n; ++j) {
    lo = std::min<int>(lo, values[j]);
    hi = std::max<int>(hi, values[j]);
  }
  int shift = 0;
  while (((hi - lo) >> shift) >= kBins) ++shift;
  int i = 0;
  for (; i + 1 < n; i += 2) {
    ++hist[(values[i] - lo) >> shift];
    ++hist[kBins + ((values[i + 1] - lo) >> shift)];
  }
  if (i < n) ++hist[(values[i] - lo) >> shift];
  // The bin of the k-th smallest: the first with count(bins ≤ it) ≥ k.
  int below = 0, bin = 0;
  for (;; ++bin) {
    const int c = hist[bin] + hist[kBins + bin];
    if (below + c >= k) break;
    below += c;
  }
  const int top = (hi - lo) >> shift;
  std::fill(hist.begin(), hist.begin() + top + 1, 0);
  std::fill(hist.begin() + kBins, hist.begin() + kBins + top + 1, 0);
  return collect_from_bin(values, n, k, below, bin, lo, shift, out);
}

int select_smallest(const uint16_t* values, int n, int k, const uint32_t* hist, int hist_size,
                    int32_t* out, int shift) {
  if (int all = check_topk_args(n, k, out); all >= 0) return all;
  ADAMAS_CHECK(shift >= 0 && shift < 16, "histogram shift must be in [0, 16), got {}", shift);
  if (k == 0) return 0;
  int below = 0, bin = 0;
  for (;; ++bin) {
    ADAMAS_CHECK(bin < hist_size, "histogram of {} bins counts fewer than n = {} values", hist_size,
                 n);
    if (below + static_cast<int>(hist[bin]) >= k) break;
    below += static_cast<int>(hist[bin]);
  }
  return collect_from_bin(values, n, k, below, bin, 0, shift, out);
}

}  // namespace adamas
#endif  // HWY_ONCE
