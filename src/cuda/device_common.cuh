// Internal device helpers shared by the kernels: element conversions and 16-byte vectors.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

namespace adamas::cuda::detail {

// 16-bit storage types of the cache, tagged by their conversions.
struct F16 {
  using T = __half;
  static __device__ __forceinline__ float to_float(T x) { return __half2float(x); }
  static __device__ __forceinline__ T from_float(float x) { return __float2half_rn(x); }
  static __device__ __forceinline__ float2 pair(uint32_t bits) {
    return __half22float2(*reinterpret_cast<const __half2*>(&bits));
  }
};
struct BF16 {
  using T = __nv_bfloat16;
  static __device__ __forceinline__ float to_float(T x) { return __bfloat162float(x); }
  static __device__ __forceinline__ T from_float(float x) { return __float2bfloat16_rn(x); }
  static __device__ __forceinline__ float2 pair(uint32_t bits) {
    return __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&bits));
  }
};

// Eight 16-bit elements (one 16-byte load) to floats.
template <class E>
__device__ __forceinline__ void unpack8(const uint4& v, float* out) {
  const float2 a = E::pair(v.x), b = E::pair(v.y), c = E::pair(v.z), d = E::pair(v.w);
  out[0] = a.x;
  out[1] = a.y;
  out[2] = b.x;
  out[3] = b.y;
  out[4] = c.x;
  out[5] = c.y;
  out[6] = d.x;
  out[7] = d.y;
}

__device__ __forceinline__ uint4 load16(const void* p) {
  return *reinterpret_cast<const uint4*>(p);
}
// Streaming load: read once, do not keep in L1.
__device__ __forceinline__ uint4 load16_stream(const void* p) {
  return __ldcs(reinterpret_cast<const uint4*>(p));
}

__host__ __device__ inline int ceil_div(long long a, long long b) {
  return static_cast<int>((a + b - 1) / b);
}

}  // namespace adamas::cuda::detail
