// The forward pass's elementwise and row kernels (contracts in cuda/model_kernels.h).
// Bandwidth-bound and small next to the matrix products: plain, coalesced, one pass each.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>

#include "cuda/device_common.cuh"
#include "cuda/model/model_launch.h"

namespace adamas::cuda {
namespace {

using detail::ceil_div;

__device__ __forceinline__ float load_as_float(const void* p, DType t, int64_t i) {
  switch (t) {
    case DType::kBF16:
      return __bfloat162float(static_cast<const __nv_bfloat16*>(p)[i]);
    case DType::kF16:
      return __half2float(static_cast<const __half*>(p)[i]);
    default:
      return static_cast<const float*>(p)[i];
  }
}
__device__ __forceinline__ void store_from_float(void* p, DType t, int64_t i, float x) {
  switch (t) {
    case DType::kBF16:
      static_cast<__nv_bfloat16*>(p)[i] = __float2bfloat16_rn(x);
      break;
    case DType::kF16:
      static_cast<__half*>(p)[i] = __float2half_rn(x);
      break;
    default:
      static_cast<float*>(p)[i] = x;
  }
}

__global__ void embed_kernel(const void* table, DType type, int vocab, int hidden,
                             const int32_t* tokens, float* x) {
  const int row = blockIdx.x;
  const int id = tokens[row];
  const bool ok = id >= 0 && id < vocab;
  for (int j = threadIdx.x; j < hidden; j += blockDim.x) {
    x[int64_t(row) * hidden + j] =
        ok ? load_as_float(table, type, int64_t(id) * hidden + j) : __int_as_float(0x7fc00000);
  }
}

// Sum over the block (blockDim.x a multiple of 32, at most 1024).
__device__ float block_sum(float v) {
  __shared__ float partial[32];
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  __syncthreads();  // partial[] may still be read by a previous call
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  const int warps = blockDim.x / 32;
  v = lane < warps ? partial[lane] : 0.0f;
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__global__ void rms_norm_kernel(const float* x, const float* weight, int dim, float eps, void* out,
                                DType out_type) {
  const float* xr = x + int64_t(blockIdx.x) * dim;
  float ss = 0;
  for (int j = threadIdx.x; j < dim; j += blockDim.x) ss += xr[j] * xr[j];
  ss = block_sum(ss);
  const float r = 1.0f / sqrtf(ss / dim + eps);
  for (int j = threadIdx.x; j < dim; j += blockDim.x)
    store_from_float(out, out_type, int64_t(blockIdx.x) * dim + j, weight[j] * (xr[j] * r));
}

// One block per token; threads over (head, pair j < d/2).
__global__ void qkv_rope_kernel(RopeArgs a) {
  const int i = blockIdx.x, d = a.head_dim, half = d / 2;
  const int H = a.num_heads, Hkv = a.num_kv_heads;
  const int width = (H + 2 * Hkv) * d;
  const float* row = a.qkv + int64_t(i) * width;
  const float pos = static_cast<float>(a.positions[i]);
  for (int t = threadIdx.x; t < (H + Hkv) * half; t += blockDim.x) {
    const int head = t / half, j = t % half;
    float s, c;
    sincosf(a.inv_freq[j] * pos, &s, &c);  // fp32 angle, full-precision sin/cos
    const int col = head * d + j;          // q heads, then k heads (contiguous in the row)
    float x0 = row[col], x1 = row[col + half];
    if (a.bias) {
      x0 += a.bias[col];
      x1 += a.bias[col + half];
    }
    float* dst =
        head < H ? a.q + (int64_t(i) * H + head) * d : a.k + (int64_t(i) * Hkv + (head - H)) * d;
    dst[j] = x0 * c - x1 * s;
    dst[j + half] = x1 * c + x0 * s;
  }
  const int v0 = (H + Hkv) * d;
  for (int t = threadIdx.x; t < Hkv * d; t += blockDim.x) {
    const float b = a.bias ? a.bias[v0 + t] : 0.0f;
    a.v[int64_t(i) * Hkv * d + t] = row[v0 + t] + b;
  }
}

__global__ void swiglu_kernel(const float* gu, const float* bias, int n, int inter, void* out,
                              DType out_type) {
  const int64_t total = int64_t(n) * inter;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < total;
       e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t i = e / inter;
    const int j = static_cast<int>(e % inter);
    float g = gu[i * 2 * inter + j], u = gu[i * 2 * inter + inter + j];
    if (bias) {
      g += bias[j];
      u += bias[inter + j];
    }
    store_from_float(out, out_type, e, g / (1.0f + expf(-g)) * u);
  }
}

__global__ void convert_kernel(const float* x, const float* bias, int64_t count, int dim, void* out,
                               DType out_type) {
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < count;
       e += int64_t(gridDim.x) * blockDim.x)
    store_from_float(out, out_type, e, x[e] + (bias ? bias[e % dim] : 0.0f));
}

__global__ void cast_kernel(const void* src, DType from, int64_t count, void* dst, DType to) {
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < count;
       e += int64_t(gridDim.x) * blockDim.x)
    store_from_float(dst, to, e, load_as_float(src, from, e));
}

__global__ void add_bias_kernel(float* x, const float* bias, int64_t count, int dim) {
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < count;
       e += int64_t(gridDim.x) * blockDim.x)
    x[e] += bias[e % dim];
}

int grid_for(int64_t count, int threads) {
  return static_cast<int>(std::min<int64_t>(ceil_div(count, threads), 132 * 16));
}

}  // namespace

namespace detail {

void launch_embed(const void* table, DType type, int vocab, int hidden, const int32_t* tokens,
                  int n, float* x, cudaStream_t stream) {
  embed_kernel<<<n, 256, 0, stream>>>(table, type, vocab, hidden, tokens, x);
}

void launch_rms_norm(const float* x, const float* weight, int n, int dim, float eps, void* out,
                     DType out_type, cudaStream_t stream) {
  rms_norm_kernel<<<n, dim >= 4096 ? 1024 : 256, 0, stream>>>(x, weight, dim, eps, out, out_type);
}

void launch_qkv_rope(const RopeArgs& a, cudaStream_t stream) {
  qkv_rope_kernel<<<a.n, 256, 0, stream>>>(a);
}

void launch_swiglu(const float* gate_up, const float* bias, int n, int inter, void* out,
                   DType out_type, cudaStream_t stream) {
  swiglu_kernel<<<grid_for(int64_t(n) * inter, 256), 256, 0, stream>>>(gate_up, bias, n, inter, out,
                                                                       out_type);
}

void launch_convert(const float* x, const float* bias, int64_t count, int dim, void* out,
                    DType out_type, cudaStream_t stream) {
  convert_kernel<<<grid_for(count, 256), 256, 0, stream>>>(x, bias, count, dim, out, out_type);
}

void launch_cast(const void* src, DType from, int64_t count, void* dst, DType to,
                 cudaStream_t stream) {
  cast_kernel<<<grid_for(count, 256), 256, 0, stream>>>(src, from, count, dst, to);
}

void launch_add_bias(float* x, const float* bias, int64_t count, int dim, cudaStream_t stream) {
  add_bias_kernel<<<grid_for(count, 256), 256, 0, stream>>>(x, bias, count, dim);
}

}  // namespace detail
}  // namespace adamas::cuda
