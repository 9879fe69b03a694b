// Distance estimation over bit-plane key codes, Highway SIMD with run-time dispatch.
// One vector holds one code word of N consecutive slots (N = 8 on AVX-512), so the popcounts of
// N keys accumulate lane-wise with no horizontal reduction. On AVX3_DL the popcount is a single
// VPOPCNTQ; other targets use Highway's bit-trick popcount.
#include "adamas/core/estimate.h"
#include "common/check.h"
#include "core/estimate_checks.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "cpu/estimate_simd.cc"
#include "hwy/cache_control.h"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace adamas::cpu {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Thermometer planes t_m = (bucket ≥ m + 1) of N keys, from their BITS stored binary planes s.
template <int BITS, class V>
HWY_INLINE void Thermometer(const V* s, V* t) {
  if constexpr (BITS == 1) {
    t[0] = s[0];
  } else if constexpr (BITS == 2) {
    t[0] = hn::Or(s[1], s[0]);
    t[1] = s[1];
    t[2] = hn::And(s[1], s[0]);
  } else {
    const V s10_or = hn::Or(s[1], s[0]), s10_and = hn::And(s[1], s[0]);
    t[0] = hn::Or(s[2], s10_or);
    t[1] = hn::Or(s[2], s[1]);
    t[2] = hn::Or(s[2], s10_and);
    t[3] = s[2];
    t[4] = hn::And(s[2], s10_or);
    t[5] = hn::And(s[2], s[1]);
    t[6] = hn::And(s[2], s10_and);
  }
}

// kIP: per thermometer plane m, Σ_i q̃_i · t_m(i) = Σ_j 2^j · popcount(U_j & t_m) − 15 ·
// popcount(t_m) with U_j the query's bit planes of u = q̃ + 15 (codes.h). This returns the first
// sum.
template <int J = 0, class V>
HWY_INLINE V QueryPlaneDot(const QueryCode& q, int words, int w, V t) {
  const hn::DFromV<V> du;
  const V c =
      hn::ShiftLeft<J>(hn::PopulationCount(hn::And(t, hn::Set(du, q.planes[J * words + w]))));
  if constexpr (J + 1 < kIpQueryPlanes) {
    return hn::Add(c, QueryPlaneDot<J + 1>(q, words, w, t));
  } else {
    return c;
  }
}

// kIP distances of the N keys at slots [s0, s0 + N) of a code page, for one query head. The key's
// integer level is a sum of plane indicators times weights: thermometer planes t_m with Δ̃_m; for
// 2 bits the binary basis instead, level = A·s0 + B·s1 + C·(s0 & s1) with A = Δ̃_1,
// B = Δ̃_1 + Δ̃_2, C = Δ̃_3 − Δ̃_1, whose third plane drops out (PLANES = 2) when the outer steps are
// equal (symmetric levels, the common case): the same integers with two thirds of the popcounts.
// Per plane: P = Σ_j 2^j·popcount(U_j & plane) and C = popcount(plane), summed over the words;
// then distance = offset − Σ weight·P + 15·Σ weight·C (in wrapping uint64: a negative C is fine).
template <int BITS, int PLANES, class D = hn::ScalableTag<uint64_t>>
HWY_INLINE hn::Vec<D> IpDistances(const QueryCode& q, const uint64_t* HWY_RESTRICT page, int words,
                                  size_t stride, int s0, int n, uint64_t* HWY_RESTRICT lanes) {
  constexpr int T = (1 << BITS) - 1;
  const D du;
  using V = hn::Vec<D>;
  int64_t weight[T];
  if constexpr (BITS == 2) {
    weight[0] = q.steps[0];
    weight[1] = q.steps[0] + q.steps[1];
    weight[2] = q.steps[2] - q.steps[0];
  } else {
    for (int m = 0; m < T; ++m) weight[m] = q.steps[m];
  }
  V dot_p[PLANES], dot_c[PLANES];
  for (int m = 0; m < PLANES; ++m) dot_p[m] = dot_c[m] = hn::Zero(du);
  for (int w = 0; w < words; ++w) {
    V s[BITS], t[T];
    for (int p = 0; p < BITS; ++p) s[p] = hn::LoadU(du, page + (p * words + w) * stride + s0);
    if constexpr (BITS == 2) {
      t[0] = s[0];
      t[1] = s[1];
      if constexpr (PLANES == 3) t[2] = hn::And(s[0], s[1]);
    } else {
      Thermometer<BITS>(s, t);
    }
    for (int m = 0; m < PLANES; ++m) {
      dot_p[m] = hn::Add(dot_p[m], QueryPlaneDot(q, words, w, t[m]));
      dot_c[m] = hn::Add(dot_c[m], hn::PopulationCount(t[m]));
    }
  }
  HWY_ALIGN uint64_t p_lanes[PLANES][hn::MaxLanes(du)], c_lanes[PLANES][hn::MaxLanes(du)];
  for (int m = 0; m < PLANES; ++m) {
    hn::Store(dot_p[m], du, p_lanes[m]);
    hn::Store(dot_c[m], du, c_lanes[m]);
  }
  for (int j = 0; j < n; ++j) {
    uint64_t x = 0, c = 0;
    for (int m = 0; m < PLANES; ++m) {
      x += static_cast<uint64_t>(weight[m]) * p_lanes[m][j];
      c += static_cast<uint64_t>(weight[m]) * c_lanes[m][j];
    }
    lanes[j] = static_cast<uint64_t>(q.offset) + 15 * c - x;
  }
  return hn::Load(du, lanes);
}

enum class Mode { kL1, kL2, kIP };

template <int BITS, Mode MODE>
void EstimateT(const QueryCode* q, int nq, const PagedCodes& codes, int words, bool sum_heads,
               uint16_t* HWY_RESTRICT out, size_t out_stride, uint32_t* HWY_RESTRICT hist,
               size_t hist_size) {
  static_assert(kIpQueryMax == 15, "the kIP offset below is (p << 4) − p");
  constexpr int T = (1 << BITS) - 1;
  const hn::ScalableTag<uint64_t> du;
  using V = hn::Vec<decltype(du)>;
  const size_t N = hn::Lanes(du);
  const int P = codes.page_size;
  const size_t stride = static_cast<size_t>(codes.slot_stride);
  HWY_ALIGN uint64_t lanes[hn::MaxLanes(du)];
  const int num_pages = (codes.length + P - 1) / P;
  for (int pi = 0; pi < num_pages; ++pi) {
    const uint64_t* HWY_RESTRICT page = codes.page(pi);
    const int base = pi * P;
    const int valid = std::min(P, codes.length - base);
    if (pi + 1 < num_pages) {  // pages are scattered in the pool: fetch the next one early
      const uint64_t* next = codes.page(pi + 1);
      for (size_t w = 0; w < static_cast<size_t>(BITS * words) * stride; w += 8) {
        hwy::Prefetch(next + w);
      }
    }
    for (int s0 = 0; s0 < valid; s0 += static_cast<int>(N)) {
      const int n = std::min(static_cast<int>(N), valid - s0);
      for (int h = 0; h < nq; ++h) {
        V acc = hn::Zero(du);
        if constexpr (MODE == Mode::kIP) {
          if constexpr (BITS == 2) {
            acc = q[h].steps[2] == q[h].steps[0]
                      ? IpDistances<2, 2>(q[h], page, words, stride, s0, n, lanes)
                      : IpDistances<2, 3>(q[h], page, words, stride, s0, n, lanes);
          } else {
            acc = IpDistances<BITS, T>(q[h], page, words, stride, s0, n, lanes);
          }
        }
        for (int w = 0; MODE != Mode::kIP && w < words; ++w) {
          V s[BITS], t[T];
          for (int p = 0; p < BITS; ++p) s[p] = hn::LoadU(du, page + (p * words + w) * stride + s0);
          Thermometer<BITS>(s, t);
          V x[T];
          for (int m = 0; m < T; ++m) {
            x[m] = hn::Xor(t[m], hn::Set(du, q[h].planes[m * words + w]));
            acc = hn::Add(acc, hn::PopulationCount(x[m]));
          }
          if constexpr (MODE ==
                        Mode::kL2) {  // Δ² = |Δ| + 2·C(|Δ|, 2): the set planes of a dim are a run
            V pairs = hn::Zero(du);
            for (int a = 0; a < T; ++a)
              for (int b = a + 1; b < T; ++b)
                pairs = hn::Add(pairs, hn::PopulationCount(hn::And(x[a], x[b])));
            acc = hn::Add(acc, hn::Add(pairs, pairs));
          }
        }
        hn::Store(acc, du, lanes);
        uint16_t* dst = sum_heads ? out + base + s0 : out + h * out_stride + base + s0;
        if (sum_heads && h > 0) {
          for (int j = 0; j < n; ++j) dst[j] = static_cast<uint16_t>(dst[j] + lanes[j]);
        } else {
          for (int j = 0; j < n; ++j) dst[j] = static_cast<uint16_t>(lanes[j]);
        }
        if (hist != nullptr && (!sum_heads || h == nq - 1)) {
          uint32_t* row = sum_heads ? hist : hist + h * hist_size;
          constexpr int shift = MODE == Mode::kIP ? kIpHistogramShift : 0;
          for (int j = 0; j < n; ++j) ++row[dst[j] >> shift];
        }
      }
    }
  }
}

void Estimate(int bits, Distance distance, const QueryCode* q, int nq, const PagedCodes& codes,
              int words, bool sum_heads, uint16_t* out, size_t out_stride, uint32_t* hist,
              size_t hist_size) {
  auto run = [&]<Mode MODE>() {
    switch (bits) {
      case 1:
        return EstimateT<1, MODE>(q, nq, codes, words, sum_heads, out, out_stride, hist, hist_size);
      case 2:
        return EstimateT<2, MODE>(q, nq, codes, words, sum_heads, out, out_stride, hist, hist_size);
      default:
        return EstimateT<3, MODE>(q, nq, codes, words, sum_heads, out, out_stride, hist, hist_size);
    }
  };
  switch (distance) {
    case Distance::kL1:
      return run.template operator()<Mode::kL1>();
    case Distance::kL2:
      return run.template operator()<Mode::kL2>();
    case Distance::kIP:
      return run.template operator()<Mode::kIP>();
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace adamas::cpu
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace adamas {
namespace cpu {
HWY_EXPORT(Estimate);
}  // namespace cpu

void estimate_distances(const CodeSpec& spec, Distance distance, const QueryCode* q, int nq,
                        const PagedCodes& codes, bool sum_heads, uint16_t* out, size_t out_stride,
                        uint32_t* histogram) {
  check_estimate_args(spec, distance, q, nq, codes, sum_heads);
  HWY_DYNAMIC_DISPATCH(cpu::Estimate)
  (spec.bits, distance, q, nq, codes, spec.words(), sum_heads, out, out_stride, histogram,
   histogram_size(spec, distance, nq, sum_heads));
}

}  // namespace adamas
#endif  // HWY_ONCE
