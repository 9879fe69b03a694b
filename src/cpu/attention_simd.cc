// Decode attention over the paged cache, Highway SIMD with run-time dispatch.
// Three passes per call: scores = scale·q·K (K read once), a stable softmax on the score buffer,
// out = p·V (V read once). K/V rows are converted from f16/bf16 to f32 in registers.
#include <algorithm>
#include <cmath>
#include <vector>

#include "adamas/core/attention.h"
#include "common/check.h"
#include "core/attention_checks.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "cpu/attention_simd.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/cache_control.h"
#include "hwy/highway.h"
#include "hwy/contrib/math/math-inl.h"

HWY_BEFORE_NAMESPACE();
namespace adamas::cpu {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;
using DF = hn::ScalableTag<float>;
using VF = hn::Vec<DF>;

template <DType T>
HWY_INLINE VF LoadRow(DF df, const std::byte* HWY_RESTRICT row, size_t j) {
  if constexpr (T == DType::kF32) {
    return hn::LoadU(df, reinterpret_cast<const float*>(row) + j);
  } else if constexpr (T == DType::kF16) {
    const hn::Rebind<hwy::float16_t, DF> dh;
    return hn::PromoteTo(df, hn::LoadU(dh, reinterpret_cast<const hwy::float16_t*>(row) + j));
  } else {
    const hn::Rebind<uint16_t, DF> d16;
    const hn::Rebind<uint32_t, DF> d32;
    const auto wide = hn::PromoteTo(d32, hn::LoadU(d16, reinterpret_cast<const uint16_t*>(row) + j));
    return hn::BitCast(df, hn::ShiftLeft<16>(wide));
  }
}

// Calls f(i, row) for the rows to attend: every position in page order (idx == nullptr) or
// positions idx[0 .. count).
template <class F>
HWY_INLINE void ForEachRow(const PagedKV& kv, const std::byte* pool, const int32_t* idx,
                           int count, F&& f) {
  if (idx == nullptr) {
    const size_t row_bytes = static_cast<size_t>(kv.head_dim) * dtype_size(kv.dtype);
    const int pages = (count + kv.page_size - 1) / kv.page_size;
    int i = 0;
    for (int pi = 0; pi < pages; ++pi) {
      const std::byte* base =
          pool + static_cast<size_t>(kv.page_ids[pi]) * kv.page_stride + kv.head_offset;
      // Pages are scattered in the pool: while reading row s of this page, prefetch row s of
      // the next one, so the next page's rows arrive one page ahead of use.
      const std::byte* next = pi + 1 < pages ? pool + static_cast<size_t>(kv.page_ids[pi + 1]) *
                                                          kv.page_stride + kv.head_offset
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
    constexpr int kAhead = 8;  // rows gathered ahead of use
    for (int i = 0; i < std::min(kAhead, count); ++i) hwy::Prefetch(kv.row(pool, idx[i]));
    const size_t row_bytes = static_cast<size_t>(kv.head_dim) * dtype_size(kv.dtype);
    for (int i = 0; i < count; ++i) {
      if (i + kAhead < count) {
        const std::byte* ahead = kv.row(pool, idx[i + kAhead]);
        for (size_t b = 0; b < row_bytes; b += 64) hwy::Prefetch(ahead + b);
      }
      f(i, kv.row(pool, idx[i]));
    }
  }
}

// dst[h * stride + i] = scale · q[h] · k_i
template <DType T>
void Scores(const float* HWY_RESTRICT q, int nq, const PagedKV& kv, const int32_t* idx, int count,
            float scale, float* HWY_RESTRICT dst, size_t stride) {
  const DF df;
  const size_t N = hn::Lanes(df), d = static_cast<size_t>(kv.head_dim);
  ForEachRow(kv, kv.k_pool, idx, count, [&](int i, const std::byte* k) {
    for (int h = 0; h < nq; ++h) {
      const float* qh = q + h * d;
      VF a0 = hn::Zero(df), a1 = hn::Zero(df);
      size_t j = 0;
      for (; j + 2 * N <= d; j += 2 * N) {
        a0 = hn::MulAdd(LoadRow<T>(df, k, j), hn::LoadU(df, qh + j), a0);
        a1 = hn::MulAdd(LoadRow<T>(df, k, j + N), hn::LoadU(df, qh + j + N), a1);
      }
      for (; j < d; j += N) a0 = hn::MulAdd(LoadRow<T>(df, k, j), hn::LoadU(df, qh + j), a0);
      dst[h * stride + i] = scale * hn::GetLane(hn::SumOfLanes(df, hn::Add(a0, a1)));
    }
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
  for (int h = 0; h < nq; ++h) inv_sum[h] = 1.0f / SoftmaxNumerators(scores.data() + h * count, count);
  std::fill(out, out + nq * d, 0.0f);
  ForEachRow(kv, kv.v_pool, idx, count, [&](int i, const std::byte* v) {
    for (int h = 0; h < nq; ++h) {
      const VF p = hn::Set(df, scores[h * count + i]);
      float* oh = out + h * d;
      for (size_t j = 0; j < d; j += N) {
        hn::StoreU(hn::MulAdd(LoadRow<T>(df, v, j), p, hn::LoadU(df, oh + j)), df, oh + j);
      }
    }
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
    case DType::kF32: return AttendT<DType::kF32>(q, nq, kv, idx, count, scale, out);
    case DType::kF16: return AttendT<DType::kF16>(q, nq, kv, idx, count, scale, out);
    case DType::kBF16: return AttendT<DType::kBF16>(q, nq, kv, idx, count, scale, out);
  }
}

void KeyScores(const float* q, int nq, const PagedKV& kv, float* out, size_t stride) {
  switch (kv.dtype) {
    case DType::kF32: return Scores<DType::kF32>(q, nq, kv, nullptr, kv.length, 1.f, out, stride);
    case DType::kF16: return Scores<DType::kF16>(q, nq, kv, nullptr, kv.length, 1.f, out, stride);
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
