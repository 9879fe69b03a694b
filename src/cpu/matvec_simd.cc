// y = x · Wᵀ for a few rows x (core/matvec.h), Highway SIMD with run-time dispatch. Each weight
// row is streamed once and converted to fp32 in registers; blocks of 4 weight rows × up to 4 x
// rows share each loaded vector (more x rows re-read the weight rows from L1, not from memory).
#include <algorithm>

#include "adamas/core/matvec.h"
#include "common/check.h"

// foreach_target.h must come first, the per-target headers after it.
// clang-format off
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "cpu/matvec_simd.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/cache_control.h"
#include "hwy/highway.h"
#include "cpu/load_row-inl.h"
// clang-format on

HWY_BEFORE_NAMESPACE();
namespace adamas::cpu {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;
using DF = hn::ScalableTag<float>;
using VF = hn::Vec<DF>;
// Weight rows per block for n ≥ 2: 4 rows × 4 x rows = 16 accumulators, 8 loads per 16 FMAs.
// (2 × 4 was 1.5-1.9× slower at n = 2..16 on the 2-core VM: 14336×4096 bf16, n = 16 9.8 vs
// 18.4 ms, there at the FMA peak.)
constexpr int kMaxR = 4;
constexpr size_t kPrefetchBytes = 4096;

// R weight rows against G rows of x: R·G dot products, each loaded vector used R or G times.
// U accumulator copies per output for G < 3 (4 / G chains per weight row): one chain per row was
// bound by the FMA latency (4 cycles per 16 weights: 28 GB/s of bf16 per core at 3.5 GHz). U
// depends on G only, never on R, so an output's summation order does not depend on where the
// threads' row ranges fall: results are the same for any thread count.
template <DType T, int R, int G>
HWY_INLINE void DotBlock(const float* HWY_RESTRICT x, int cols, const std::byte* const* w,
                         float (*out)[4]) {
  const DF df;
  const size_t N = hn::Lanes(df);
  constexpr int U = G >= 3 ? 1 : 4 / G;
  VF acc[U][R][G];
  for (int u = 0; u < U; ++u)
    for (int r = 0; r < R; ++r)
      for (int g = 0; g < G; ++g) acc[u][r][g] = hn::Zero(df);
  auto step = [&](int u, size_t j) HWY_ATTR {
    VF wj[R];
    for (int r = 0; r < R; ++r) wj[r] = LoadRow<T>(df, w[r], j);
    for (int g = 0; g < G; ++g) {
      const VF xg = hn::LoadU(df, x + g * size_t(cols) + j);
      for (int r = 0; r < R; ++r) acc[u][r][g] = hn::MulAdd(wj[r], xg, acc[u][r][g]);
    }
  };
  size_t j = 0;
  for (; j + U * N <= static_cast<size_t>(cols); j += U * N)
    for (int u = 0; u < U; ++u) step(u, j + u * N);
  for (; j + N <= static_cast<size_t>(cols); j += N) step(0, j);
  for (int r = 0; r < R; ++r)
    for (int g = 0; g < G; ++g) {
      VF sum = acc[0][r][g];
      for (int u = 1; u < U; ++u) sum = hn::Add(sum, acc[u][r][g]);
      float s = hn::GetLane(hn::SumOfLanes(df, sum));
      for (size_t t = j; t < static_cast<size_t>(cols); ++t) {
        float wt;
        convert_to_f32(w[r] + t * dtype_size(T), T, &wt, 1);
        s += wt * x[g * size_t(cols) + t];
      }
      out[r][g] = s;
    }
}

// DotBlock with G as a run-time value (G ≤ 4).
template <DType T, int R>
HWY_INLINE void DotBlockG(int g, const float* x, int cols, const std::byte* const* w,
                          float (*out)[4]) {
  switch (g) {
    case 4:
      return DotBlock<T, R, 4>(x, cols, w, out);
    case 3:
      return DotBlock<T, R, 3>(x, cols, w, out);
    case 2:
      return DotBlock<T, R, 2>(x, cols, w, out);
    default:
      return DotBlock<T, R, 1>(x, cols, w, out);
  }
}

template <DType T>
void MatvecT(const float* x, int n, int cols, const void* W, int r0, int r1, float* y,
             size_t y_stride) {
  const size_t row_bytes = size_t(cols) * dtype_size(T);
  float tmp[kMaxR][4];
  for (int r = r0; r < r1;) {
    // One half-precision row at a time for n = 1: four streams measured slower there (1B-shape
    // step, 2-core VM: bf16 38-44 vs 30-34 GB/s); f32 rows hold twice the bytes per weight and
    // gain from four (32-33 -> 47-50 GB/s).
    const int R = n == 1 && T != DType::kF32 ? 1 : r1 - r >= kMaxR ? kMaxR : r1 - r >= 2 ? 2 : 1;
    const std::byte* w[kMaxR];
    for (int k = 0; k < R; ++k) w[k] = static_cast<const std::byte*>(W) + size_t(r + k) * row_bytes;
    // Software prefetch kPrefetchBytes ahead of the stream (the hardware prefetcher ramps up
    // slowly at the start of each thread's block).
    if (n >= 2) {
      const std::byte* end = static_cast<const std::byte*>(W) + size_t(r1) * row_bytes;
      const std::byte* from = w[0] + kPrefetchBytes;
      for (const std::byte* a = from; a < std::min(from + R * row_bytes, end); a += 64)
        hwy::Prefetch(a);
    }
    for (int i = 0; i < n;) {
      const int g = std::min(4, n - i);
      if (R == kMaxR) {
        DotBlockG<T, kMaxR>(g, x + size_t(i) * cols, cols, w, tmp);
      } else if (R == 2) {
        DotBlockG<T, 2>(g, x + size_t(i) * cols, cols, w, tmp);
      } else {
        DotBlockG<T, 1>(g, x + size_t(i) * cols, cols, w, tmp);
      }
      for (int k = 0; k < R; ++k)
        for (int q = 0; q < g; ++q) y[size_t(i + q) * y_stride + r + k] = tmp[k][q];
      i += g;
    }
    r += R;
  }
}

void Matvec(const float* x, int n, int cols, const void* W, DType t, int r0, int r1, float* y,
            size_t y_stride) {
  switch (t) {
    case DType::kF32:
      return MatvecT<DType::kF32>(x, n, cols, W, r0, r1, y, y_stride);
    case DType::kF16:
      return MatvecT<DType::kF16>(x, n, cols, W, r0, r1, y, y_stride);
    case DType::kBF16:
      return MatvecT<DType::kBF16>(x, n, cols, W, r0, r1, y, y_stride);
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace adamas::cpu
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace adamas {
namespace cpu {
HWY_EXPORT(Matvec);
}  // namespace cpu

void matvec(const float* x, int n, int cols, const void* W, DType wtype, int row_begin, int row_end,
            float* y, size_t y_stride) {
  ADAMAS_CHECK(n >= 1 && n <= kMatvecMaxRows, "matvec: n must be in [1, {}], got {}",
               kMatvecMaxRows, n);
  ADAMAS_CHECK(cols >= 1, "matvec: cols must be ≥ 1, got {}", cols);
  ADAMAS_CHECK(row_begin >= 0 && row_begin <= row_end, "matvec: bad row range [{}, {})", row_begin,
               row_end);
  ADAMAS_CHECK(y_stride >= static_cast<size_t>(row_end), "matvec: y_stride {} < row_end {}",
               y_stride, row_end);
  ADAMAS_CHECK(x != nullptr && W != nullptr && y != nullptr, "matvec: null x, W or y");
  HWY_DYNAMIC_DISPATCH(cpu::Matvec)(x, n, cols, W, wtype, row_begin, row_end, y, y_stride);
}

}  // namespace adamas
#endif  // HWY_ONCE
