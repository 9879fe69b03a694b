// Append + encode, and query encode: one warp per (token, KV head) or per query head, with the
// warp encoder of codes_device.cuh (bit-identical to the CPU's codes).
#include <cuda_runtime.h>

#include "cuda/codes_device.cuh"
#include "cuda/device_common.cuh"
#include "cuda/launch.h"

namespace adamas::cuda::detail {
namespace {

template <class Src>
__device__ __forceinline__ float src_to_float(Src x);
template <>
__device__ __forceinline__ float src_to_float(float x) {
  return x;
}
template <>
__device__ __forceinline__ float src_to_float(__half x) {
  return __half2float(x);
}
template <>
__device__ __forceinline__ float src_to_float(__nv_bfloat16 x) {
  return __bfloat162float(x);
}

// One warp per (token, KV head). Src = void: re-encode the stored key only.
template <int E, class Cache, class Src>
__global__ void append_kernel(DeviceLayer layer, const int32_t* __restrict__ slots, int n,
                              const Src* __restrict__ k, const Src* __restrict__ v, float scale) {
  using T = typename Cache::T;
  const int lane = threadIdx.x & 31;
  const long long warp = (static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
  if (warp >= static_cast<long long>(n) * layer.num_kv_heads) return;  // whole warps exit
  const int token = static_cast<int>(warp / layer.num_kv_heads);
  const int head = static_cast<int>(warp % layer.num_kv_heads);
  const int d = layer.head_dim;
  const int global_slot = slots[token];
  const int page = global_slot / layer.page_size, slot = global_slot % layer.page_size;
  const size_t row = static_cast<size_t>(head) * layer.kv_head_stride +
                     static_cast<size_t>(page) * layer.kv_page_stride +
                     static_cast<size_t>(slot) * d * sizeof(T);
  T* k_row = reinterpret_cast<T*>(layer.k_pool + row);
  T* v_row = reinterpret_cast<T*>(layer.v_pool + row);
  const bool lane_valid = lane < d;

  float x[E];
#pragma unroll
  for (int j = 0; j < E; ++j) {
    const int i = lane + 32 * j;
    x[j] = 0.0f;
    if (!lane_valid) continue;
    if constexpr (std::is_void_v<Src>) {
      x[j] = Cache::to_float(k_row[i]);
    } else {
      const size_t src = (static_cast<size_t>(token) * layer.num_kv_heads + head) * d + i;
      const T kt = Cache::from_float(src_to_float(k[src]));
      k_row[i] = kt;
      v_row[i] = Cache::from_float(src_to_float(v[src]));
      x[j] = Cache::to_float(kt);  // codes are computed from the key as stored
    }
  }
  if (layer.hadamard) hadamard_warp<E>(x, d, scale, lane);
  int b[E];
  bucketize<E>(x, layer.thresholds + head * kMaxThermoPlanes, (1 << layer.bits) - 1, b);

  const int words = layer.words(), stride = layer.slot_stride();
  uint64_t* code_page = layer.code_pool + static_cast<size_t>(head) * layer.code_head_stride +
                        static_cast<size_t>(page) * layer.code_page_stride;
  for (int p = 0; p < layer.bits; ++p) {
    for (int w = 0; w < words; ++w) {
      const uint64_t word = plane_word<E>(w, lane_valid, [&](int j) { return (b[j] >> p) & 1; });
      if (lane == p * words + w) code_page[static_cast<size_t>(lane) * stride + slot] = word;
    }
  }
}

// One warp per query head: thermometer planes (bucket ≥ m + 1) of the transformed query.
template <int E>
__global__ void encode_queries_kernel(DeviceLayer layer, const float* __restrict__ q, int rows,
                                      int num_q_heads, float scale, QueryCode* __restrict__ out) {
  const int lane = threadIdx.x & 31;
  const long long warp = (static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
  if (warp >= static_cast<long long>(rows) * num_q_heads) return;
  const int d = layer.head_dim;
  const int qh = static_cast<int>(warp % num_q_heads);
  const int kv_head = qh / (num_q_heads / layer.num_kv_heads);
  const uint64_t mine =
      encode_query_warp<E>(q + warp * d, d, layer.hadamard, scale,
                           layer.thresholds + kv_head * kMaxThermoPlanes, layer.bits, lane);
  const int words = layer.words();
  QueryCode& code = out[warp];
  if (lane < kMaxThermoPlanes * kMaxCodeWords) code.planes[lane] = mine;  // unused planes: 0
  if (lane == 0) {
    code.bits = layer.bits;
    code.words = words;
  }
}

constexpr int kWarpsPerBlock = 4;

int warp_blocks(long long warps) { return ceil_div(warps, kWarpsPerBlock); }

template <int E, class Cache>
void append_for_src(const DeviceLayer& layer, const int32_t* slots, int n, const void* k,
                    const void* v, DType src, float scale, cudaStream_t stream) {
  const int blocks = warp_blocks(static_cast<long long>(n) * layer.num_kv_heads);
  const dim3 block(32 * kWarpsPerBlock);
  if (k == nullptr) {
    append_kernel<E, Cache, void>
        <<<blocks, block, 0, stream>>>(layer, slots, n, nullptr, nullptr, scale);
  } else if (src == DType::kF32) {
    append_kernel<E, Cache, float><<<blocks, block, 0, stream>>>(
        layer, slots, n, static_cast<const float*>(k), static_cast<const float*>(v), scale);
  } else if (src == DType::kF16) {
    append_kernel<E, Cache, __half><<<blocks, block, 0, stream>>>(
        layer, slots, n, static_cast<const __half*>(k), static_cast<const __half*>(v), scale);
  } else {
    append_kernel<E, Cache, __nv_bfloat16>
        <<<blocks, block, 0, stream>>>(layer, slots, n, static_cast<const __nv_bfloat16*>(k),
                                       static_cast<const __nv_bfloat16*>(v), scale);
  }
}

template <int E>
void append_for_dim(const DeviceLayer& layer, const int32_t* slots, int n, const void* k,
                    const void* v, DType src, float scale, cudaStream_t stream) {
  if (layer.dtype == DType::kF16) {
    append_for_src<E, F16>(layer, slots, n, k, v, src, scale, stream);
  } else {
    append_for_src<E, BF16>(layer, slots, n, k, v, src, scale, stream);
  }
}

}  // namespace

void launch_append(const DeviceLayer& layer, const int32_t* slots, int n, const void* k,
                   const void* v, DType src, float scale, cudaStream_t stream) {
  if (n == 0) return;
  switch (layer.head_dim) {
    case 16:
    case 32:
      append_for_dim<1>(layer, slots, n, k, v, src, scale, stream);
      break;
    case 64:
      append_for_dim<2>(layer, slots, n, k, v, src, scale, stream);
      break;
    case 128:
      append_for_dim<4>(layer, slots, n, k, v, src, scale, stream);
      break;
    default:
      append_for_dim<8>(layer, slots, n, k, v, src, scale, stream);
      break;
  }
}

void launch_encode_queries(const DeviceLayer& layer, const float* q, int rows, int num_q_heads,
                           float scale, QueryCode* out, cudaStream_t stream) {
  if (rows == 0) return;
  const int blocks = warp_blocks(static_cast<long long>(rows) * num_q_heads);
  const dim3 block(32 * kWarpsPerBlock);
  switch (layer.head_dim) {
    case 16:
    case 32:
      encode_queries_kernel<1>
          <<<blocks, block, 0, stream>>>(layer, q, rows, num_q_heads, scale, out);
      break;
    case 64:
      encode_queries_kernel<2>
          <<<blocks, block, 0, stream>>>(layer, q, rows, num_q_heads, scale, out);
      break;
    case 128:
      encode_queries_kernel<4>
          <<<blocks, block, 0, stream>>>(layer, q, rows, num_q_heads, scale, out);
      break;
    default:
      encode_queries_kernel<8>
          <<<blocks, block, 0, stream>>>(layer, q, rows, num_q_heads, scale, out);
      break;
  }
}

}  // namespace adamas::cuda::detail
