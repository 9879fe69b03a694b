// Internal: the warp-level encoder shared by append (keys), query encode and the estimate kernel
// (which encodes its queries itself).
//
// Lane l holds elements i = l + 32·j (j < E = head_dim / 32; lanes 0..15 with E = 1 when
// head_dim = 16), so that
//  - the Hadamard butterflies of half-width h < 32 are lane shuffles and the wider ones are
//    in-lane, done in the CPU's order (h = 1, 2, 4, ...) with the same exact add/sub, then the
//    same single rounding multiply by 1/sqrt(d): the transformed vector is bit-identical to the
//    CPU's, and so are the buckets;
//  - a warp ballot of one element slot j gives 32 consecutive dimensions of a bit-plane, so two
//    ballots make one 64-bit code word, with no shared memory.
#pragma once

#include <cstdint>

#include "adamas/core/codes.h"

namespace adamas::cuda::detail {

constexpr unsigned kFull = 0xffffffffu;

template <int E>
__device__ __forceinline__ void hadamard_warp(float (&x)[E], int d, float scale, int lane) {
  const int width = d < 32 ? d : 32;
  for (int h = 1; h < width; h <<= 1) {
#pragma unroll
    for (int j = 0; j < E; ++j) {
      const float y = __shfl_xor_sync(kFull, x[j], h);
      x[j] = (lane & h) ? y - x[j] : x[j] + y;
    }
  }
#pragma unroll
  for (int hh = 1; hh < E; hh <<= 1) {
#pragma unroll
    for (int j = 0; j < E; ++j) {
      if ((j & hh) == 0) {
        const float a = x[j], b = x[j | hh];
        x[j] = a + b;
        x[j | hh] = a - b;
      }
    }
  }
#pragma unroll
  for (int j = 0; j < E; ++j) x[j] *= scale;
}

template <int E>
__device__ __forceinline__ void bucketize(const float (&x)[E], const float* thresholds, int count,
                                          int (&b)[E]) {
#pragma unroll
  for (int j = 0; j < E; ++j) {
    int n = 0;
    for (int m = 0; m < count; ++m) n += x[j] > thresholds[m];
    b[j] = n;
  }
}

// 64-bit word w of the plane whose bit for dimension i is pred(element of dimension i).
template <int E, class Pred>
__device__ __forceinline__ uint64_t plane_word(int w, bool lane_valid, Pred pred) {
  uint64_t word = 0;
#pragma unroll
  for (int j = 0; j < E; ++j) {
    if (j / 2 == w) {
      const uint64_t bits = __ballot_sync(kFull, lane_valid && pred(j));
      word |= bits << (32 * (j % 2));
    }
  }
  return word;
}

// Loads one fp32 query row (lane-strided), transforms and bucketizes it, and returns in `mine`
// the thermometer word (bucket ≥ m + 1, plane-major: index m · words + w) whose index is the lane.
template <int E>
__device__ __forceinline__ uint64_t encode_query_warp(const float* q, int d, bool hadamard,
                                                      float scale, const float* thresholds,
                                                      int bits, int lane) {
  const bool lane_valid = lane < d;
  float x[E];
#pragma unroll
  for (int j = 0; j < E; ++j) x[j] = lane_valid ? q[lane + 32 * j] : 0.0f;
  if (hadamard) hadamard_warp<E>(x, d, scale, lane);
  int b[E];
  const int planes = (1 << bits) - 1;
  bucketize<E>(x, thresholds, planes, b);
  const int words = (d + 63) / 64;
  uint64_t mine = 0;
  for (int m = 0; m < planes; ++m) {
    for (int w = 0; w < words; ++w) {
      const uint64_t word = plane_word<E>(w, lane_valid, [&](int j) { return b[j] >= m + 1; });
      if (lane == m * words + w) mine = word;
    }
  }
  return mine;
}

}  // namespace adamas::cuda::detail
