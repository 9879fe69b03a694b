// Decode attention over the paged cache, Highway SIMD with run-time dispatch.
// Three passes per call: scores = scale·q·K (K read once), a stable softmax on the score buffer,
// out = p·V (V read once). K/V rows are converted from f16/bf16 to f32 in registers.
#include <algorithm>
#include <cmath>
#include <vector>

#include "adamas/core/attention.h"
#include "common/check.h"
#include "core/attention_checks.h"

// foreach_target.h must come first, the per-target headers after it.
// clang-format off
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "cpu/attention_simd.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/cache_control.h"
#include "hwy/highway.h"
#include "hwy/contrib/math/math-inl.h"
#include "cpu/load_row-inl.h"
// clang-format on

HWY_BEFORE_NAMESPACE();
namespace adamas::cpu {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;
using DF = hn::ScalableTag<float>;
using VF = hn::Vec<DF>;

// Calls f(i, row) for the rows to attend: every position in page order (idx == nullptr) or
// positions idx[0 .. count).
constexpr int kAhead = 16;  // gathered rows prefetched ahead of use (8 before the V prefetch)

template <class F>
HWY_INLINE void ForEachRow(const PagedKV& kv, const std::byte* pool, const int32_t* idx, int count,
                           F&& f, const std::byte* also = nullptr) {
  if (idx == nullptr) {
    const size_t row_bytes = static_cast<size_t>(kv.head_dim) * dtype_size(kv.dtype);
    const int pages = (count + kv.page_size - 1) / kv.page_size;
    int i = 0;
    for (int pi = 0; pi < pages; ++pi) {
      const std::byte* base =
          pool + static_cast<size_t>(kv.page_ids[pi]) * kv.page_stride + kv.head_offset;
      // Pages are scattered in the pool: while reading row s of this page, prefetch row s of
      // the next one, so the next page's rows arrive one page ahead of use.
      const std::byte* next =
          pi + 1 < pages
              ? pool + static_cast<size_t>(kv.page_ids[pi + 1]) * kv.page_stride + kv.head_offset
              : nullptr;
      const int valid = std::min(kv.page_size, count - i);
      for (int s = 0; s < valid; ++s, ++i) {
        if (next != nullptr) {
          for (size_t b = 0; b < row_bytes; b += 64) hwy::Prefetch(next + s * row_bytes + b);
        }
        f(i, base + s * row_bytes);
      }
    }
  } else {
    // Gathered rows: prefetch kAhead rows ahead of use, and the same rows of `also` (the V pool
    // while the K pass runs: the V pass then finds its rows in L2, not in memory).
    const size_t row_bytes = static_cast<size_t>(kv.head_dim) * dtype_size(kv.dtype);
    auto prefetch = [&](int i) {
      for (const std::byte* p : {pool, also}) {
        if (p == nullptr) continue;
        const std::byte* r = kv.row(p, idx[i]);
        for (size_t b = 0; b < row_bytes; b += 64) hwy::Prefetch(r + b);
      }
    };
    for (int i = 0; i < std::min(kAhead, count); ++i) prefetch(i);
    for (int i = 0; i < count; ++i) {
      if (i + kAhead < count) prefetch(i + kAhead);
      f(i, kv.row(pool, idx[i]));
    }
  }
}

// dst[h * stride + i] = scale · q[h] · k_i for HN heads: each K row is loaded and converted
// once for all of them (GQA).
template <DType T, int HN>
void ScoresGroup(const float* HWY_RESTRICT q, const PagedKV& kv, const int32_t* idx, int count,
                 float scale, float* HWY_RESTRICT dst, size_t stride) {
  const DF df;
  const size_t N = hn::Lanes(df), d = static_cast<size_t>(kv.head_dim);
  constexpr int kAcc = HN == 1 ? 2 : HN;  // one head: two chains to hide the FMA latency
  ForEachRow(
      kv, kv.k_pool, idx, count,
      [&](int i, const std::byte* k) {
        VF acc[kAcc];
        for (int a = 0; a < kAcc; ++a) acc[a] = hn::Zero(df);
        if constexpr (HN == 1) {
          size_t j = 0;
          for (; j + 2 * N <= d; j += 2 * N) {
            acc[0] = hn::MulAdd(LoadRow<T>(df, k, j), hn::LoadU(df, q + j), acc[0]);
            acc[1] = hn::MulAdd(LoadRow<T>(df, k, j + N), hn::LoadU(df, q + j + N), acc[1]);
          }
          for (; j < d; j += N)
            acc[0] = hn::MulAdd(LoadRow<T>(df, k, j), hn::LoadU(df, q + j), acc[0]);
          dst[i] = scale * hn::GetLane(hn::SumOfLanes(df, hn::Add(acc[0], acc[1])));
        } else {
          for (size_t j = 0; j < d; j += N) {
            const VF kj = LoadRow<T>(df, k, j);
            for (int h = 0; h < HN; ++h)
              acc[h] = hn::MulAdd(kj, hn::LoadU(df, q + h * d + j), acc[h]);
          }
          for (int h = 0; h < HN; ++h) {
            dst[h * stride + i] = scale * hn::GetLane(hn::SumOfLanes(df, acc[h]));
          }
        }
      },
      idx != nullptr ? kv.v_pool : nullptr);
}

// acc[h][t] += Σ_k p[h][at[k]] · v_k[(j0 + t)·N ...] over a block of rows: HN heads × J vectors
// of each row, all in registers (HN · J ≤ 16).
template <DType T, int HN, int J>
HWY_INLINE void WeightedBlock(const float* HWY_RESTRICT p, size_t p_stride,
                              const std::byte* const* rows, const int* at, int k, size_t j0,
                              size_t d, float* HWY_RESTRICT out) {
  const DF df;
  const size_t N = hn::Lanes(df);
  VF acc[HN][J];
  for (int h = 0; h < HN; ++h)
    for (int t = 0; t < J; ++t) acc[h][t] = hn::Zero(df);
  for (int r = 0; r < k; ++r) {
    VF vj[J];
    for (int t = 0; t < J; ++t) vj[t] = LoadRow<T>(df, rows[r], j0 + t * N);
    for (int h = 0; h < HN; ++h) {
      const VF w = hn::Set(df, p[h * p_stride + at[r]]);
      for (int t = 0; t < J; ++t) acc[h][t] = hn::MulAdd(vj[t], w, acc[h][t]);
    }
  }
  for (int h = 0; h < HN; ++h)
    for (int t = 0; t < J; ++t) {
      float* o = out + h * d + j0 + t * N;
      hn::StoreU(hn::Add(hn::LoadU(df, o), acc[h][t]), df, o);
    }
}

// out[h] += Σ_i p[h][i] · v_i for HN heads, each V row loaded and converted once. Rows go in
// blocks of 16 (in L1 after the first touch); per block, the HN × d outputs are accumulated in
// registers in slices of at most 16 vectors, so out is loaded and stored once per block rather
// than once per row (that load/store was 4× the K pass's time in the CPU decode profile).
template <DType T, int HN>
void WeightedValuesGroup(const float* HWY_RESTRICT p, size_t p_stride, const PagedKV& kv,
                         const int32_t* idx, int count, float* HWY_RESTRICT out) {
  const DF df;
  const size_t N = hn::Lanes(df), d = static_cast<size_t>(kv.head_dim);
  const size_t vectors = d / N;  // d and N are powers of two, d ≥ 16 ≥ N on every target
  constexpr size_t kMaxJ = 16 / HN;
  const size_t J = std::min(kMaxJ, vectors);
  constexpr int kBlock = 16;
  const std::byte* rows[kBlock];
  int at[kBlock];
  int k = 0;
  auto flush = [&] {
    for (size_t j0 = 0; j0 < d; j0 += J * N) {
      switch (J) {
        case 1:
          WeightedBlock<T, HN, 1>(p, p_stride, rows, at, k, j0, d, out);
          break;
        case 2:
          WeightedBlock<T, HN, 2>(p, p_stride, rows, at, k, j0, d, out);
          break;
        case 4:
          if constexpr (kMaxJ >= 4) WeightedBlock<T, HN, 4>(p, p_stride, rows, at, k, j0, d, out);
          break;
        case 8:
          if constexpr (kMaxJ >= 8) WeightedBlock<T, HN, 8>(p, p_stride, rows, at, k, j0, d, out);
          break;
        default:
          if constexpr (kMaxJ >= 16) WeightedBlock<T, HN, 16>(p, p_stride, rows, at, k, j0, d, out);
          break;
      }
    }
    k = 0;
  };
  ForEachRow(kv, kv.v_pool, idx, count, [&](int i, const std::byte* v) {
    rows[k] = v;
    at[k++] = i;
    if (k == kBlock) flush();
  });
  if (k > 0) flush();
}

// Splits nq heads into groups of 8, 4, 2 and 1 and calls fn.template operator()<HN>(h0).
template <class F>
HWY_INLINE void ForHeadGroups(int nq, F&& fn) {
  int h = 0;
  for (; h + 8 <= nq; h += 8) fn.template operator()<8>(h);
  if (h + 4 <= nq) fn.template operator()<4>(h), h += 4;
  if (h + 2 <= nq) fn.template operator()<2>(h), h += 2;
  if (h < nq) fn.template operator()<1>(h);
}

template <DType T>
void Scores(const float* HWY_RESTRICT q, int nq, const PagedKV& kv, const int32_t* idx, int count,
            float scale, float* HWY_RESTRICT dst, size_t stride) {
  const size_t d = static_cast<size_t>(kv.head_dim);
  ForHeadGroups(nq, [&]<int HN>(int h0) {
    ScoresGroup<T, HN>(q + h0 * d, kv, idx, count, scale, dst + h0 * stride, stride);
  });
}

// In place: p = exp(s − max s); returns Σ p.
HWY_INLINE float SoftmaxNumerators(float* HWY_RESTRICT s, int count) {
  const DF df;
  const size_t N = hn::Lanes(df);
  float mx = -INFINITY;
  for (int i = 0; i < count; ++i) mx = std::max(mx, s[i]);
  const VF vmx = hn::Set(df, mx);
  VF vsum = hn::Zero(df);
  size_t i = 0;
  for (; i + N <= static_cast<size_t>(count); i += N) {
    const VF p = hn::Exp(df, hn::Sub(hn::LoadU(df, s + i), vmx));
    hn::StoreU(p, df, s + i);
    vsum = hn::Add(vsum, p);
  }
  float sum = hn::GetLane(hn::SumOfLanes(df, vsum));
  for (; i < static_cast<size_t>(count); ++i) {
    s[i] = std::exp(s[i] - mx);
    sum += s[i];
  }
  return sum;
}

template <DType T>
void AttendT(const float* HWY_RESTRICT q, int nq, const PagedKV& kv, const int32_t* idx, int count,
             float scale, float* HWY_RESTRICT out) {
  const DF df;
  const size_t N = hn::Lanes(df), d = static_cast<size_t>(kv.head_dim);
  thread_local std::vector<float> scores;
  scores.resize(static_cast<size_t>(nq) * count);
  Scores<T>(q, nq, kv, idx, count, scale, scores.data(), count);
  float inv_sum[64];
  for (int h = 0; h < nq; ++h)
    inv_sum[h] = 1.0f / SoftmaxNumerators(scores.data() + h * count, count);
  std::fill(out, out + nq * d, 0.0f);
  ForHeadGroups(nq, [&]<int HN>(int h0) {
    WeightedValuesGroup<T, HN>(scores.data() + size_t(h0) * count, count, kv, idx, count,
                               out + h0 * d);
  });
  for (int h = 0; h < nq; ++h) {
    const VF r = hn::Set(df, inv_sum[h]);
    for (size_t j = 0; j < d; j += N) {
      hn::StoreU(hn::Mul(hn::LoadU(df, out + h * d + j), r), df, out + h * d + j);
    }
  }
}

void Attend(const float* q, int nq, const PagedKV& kv, const int32_t* idx, int count, float scale,
            float* out) {
  switch (kv.dtype) {
    case DType::kF32:
      return AttendT<DType::kF32>(q, nq, kv, idx, count, scale, out);
    case DType::kF16:
      return AttendT<DType::kF16>(q, nq, kv, idx, count, scale, out);
    case DType::kBF16:
      return AttendT<DType::kBF16>(q, nq, kv, idx, count, scale, out);
  }
}

void KeyScores(const float* q, int nq, const PagedKV& kv, float* out, size_t stride) {
  switch (kv.dtype) {
    case DType::kF32:
      return Scores<DType::kF32>(q, nq, kv, nullptr, kv.length, 1.f, out, stride);
    case DType::kF16:
      return Scores<DType::kF16>(q, nq, kv, nullptr, kv.length, 1.f, out, stride);
    case DType::kBF16:
      return Scores<DType::kBF16>(q, nq, kv, nullptr, kv.length, 1.f, out, stride);
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace adamas::cpu
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace adamas {
namespace cpu {
HWY_EXPORT(Attend);
HWY_EXPORT(KeyScores);
}  // namespace cpu

static void check_group(int nq) {
  ADAMAS_CHECK(nq <= 64, "at most 64 query heads per KV head, got {}", nq);
}

void dense_decode_attention(const float* q, int nq, const PagedKV& kv, float scale, float* out) {
  check_attention_args(nq, kv);
  check_group(nq);
  HWY_DYNAMIC_DISPATCH(cpu::Attend)(q, nq, kv, nullptr, kv.length, scale, out);
}

void sparse_decode_attention(const float* q, int nq, const PagedKV& kv, const int32_t* indices,
                             int count, float scale, float* out) {
  check_attention_args(nq, kv);
  check_group(nq);
  check_indices(kv, indices, count);
  HWY_DYNAMIC_DISPATCH(cpu::Attend)(q, nq, kv, indices, count, scale, out);
}

void key_scores(const float* q, int nq, const PagedKV& kv, float* out, size_t out_stride) {
  check_attention_args(nq, kv);
  HWY_DYNAMIC_DISPATCH(cpu::KeyScores)(q, nq, kv, out, out_stride);
}

}  // namespace adamas
#endif  // HWY_ONCE
