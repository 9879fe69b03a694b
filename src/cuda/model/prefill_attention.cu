// Causal prefill attention over the paged cache on tensor cores (contract in
// cuda/model_kernels.h), flash-attention style:
//   block = 64 query rows of one query head (4 warps × 16 rows), keys in tiles of 64;
//   S = Q·Kᵀ and O += P·V with mma.sync m16n8k16 (f16/bf16 operands, fp32 accumulators);
//   the online softmax runs on the S accumulators in registers, and P goes from the S
//   accumulators straight into the A operand of P·V (the C layout of m16n8 is the A layout of
//   m16n8k16 for two adjacent tiles), so P never touches shared memory.
// Q, K and V tiles sit in shared memory with rows padded by 16 bytes, so the ldmatrix reads of
// 8 rows hit 8 different bank groups. K/V rows come from the page table one row at a time
// (cp.async, zero-filled past the causal end, so masked rows hold no NaN that 0·x could spread).
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "cuda/device_common.cuh"
#include "cuda/mma.cuh"
#include "cuda/model/model_launch.h"

namespace adamas::cuda::detail {
namespace {

constexpr int kRows = 64;  // query rows per block
constexpr int kKeys = 64;  // keys per tile
constexpr int kWarps = 4;  // 16 rows each
constexpr float kLog2e = 1.4426950408889634f;

__device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}
__device__ __forceinline__ void ldmatrix_x4(uint32_t* r, const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p)));
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t* r, const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p)));
}
// 16 bytes global → shared; src_bytes 0 writes zeros.
__device__ __forceinline__ void cp_async16(void* dst, const void* src, int src_bytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(dst)), "l"(src),
               "r"(src_bytes));
}
__device__ __forceinline__ void cp_async_wait_all() {
  asm volatile("cp.async.commit_group;\ncp.async.wait_group 0;\n" ::);
}

template <int D, class E>
__global__ void __launch_bounds__(kWarps * 32)
    prefill_attention_kernel(DeviceLayer layer, DeviceBatch batch, const float* __restrict__ q,
                             int n, int num_heads, float scale, float* __restrict__ out) {
  using T = typename E::T;
  constexpr int kStride = D + 8;  // shared row stride in elements (16-byte padding)
  constexpr int kDimTiles = D / 8;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  T* Qs = reinterpret_cast<T*>(smem_raw);
  T* Ks = Qs + kRows * kStride;
  T* Vs = Ks + kKeys * kStride;

  const int h = blockIdx.y, i0 = blockIdx.x * kRows;
  const int kv_head = h / (num_heads / layer.num_kv_heads);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int g = lane / 4, c = lane % 4;
  const int length = batch.lengths[0];
  const int p0 = length - n;  // position of the first new token
  const int32_t* pages = batch.page_indices + batch.page_indptr[0];

  // Q tile → shared, rounded to the operand type; rows past n are zero.
  for (int e = threadIdx.x; e < kRows * D / 2; e += blockDim.x) {
    const int r = e / (D / 2), j = (e % (D / 2)) * 2;
    float2 x = make_float2(0.0f, 0.0f);
    if (i0 + r < n)
      x = *reinterpret_cast<const float2*>(q + (int64_t(i0 + r) * num_heads + h) * D + j);
    *reinterpret_cast<uint32_t*>(Qs + r * kStride + j) = Mma<E>::pack(x.x, x.y);
  }

  float o[kDimTiles][4];
#pragma unroll
  for (int t = 0; t < kDimTiles; ++t) o[t][0] = o[t][1] = o[t][2] = o[t][3] = 0.0f;
  float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.0f, l1 = 0.0f;
  const int row0 = warp * 16 + g;  // this thread's rows in the block: row0 and row0 + 8
  const int qp0 = p0 + i0 + row0, qp1 = qp0 + 8;
  const float sl2 = scale * kLog2e;

  const int last = p0 + min(i0 + kRows, n) - 1;  // the block's last query position
  const int tiles = last / kKeys + 1;
  const size_t head_off = size_t(kv_head) * layer.kv_head_stride;
  for (int tile = 0; tile < tiles; ++tile) {
    const int k0 = tile * kKeys;
    __syncthreads();  // the previous tile's K/V (and, first, the Q stores) are done with
    constexpr int kChunks = kKeys * D / 8;  // 16-byte chunks per K (or V) tile
    for (int e = threadIdx.x; e < kChunks; e += blockDim.x) {
      const int r = e / (D / 8), col = (e % (D / 8)) * 8;
      const int key = k0 + r;
      const bool ok = key <= last;
      size_t off = 0;
      if (ok) {
        const int page = pages[key / layer.page_size], slot = key % layer.page_size;
        off = head_off + size_t(page) * layer.kv_page_stride + (size_t(slot) * D + col) * 2;
      }
      cp_async16(Ks + r * kStride + col, layer.k_pool + off, ok ? 16 : 0);
      cp_async16(Vs + r * kStride + col, layer.v_pool + off, ok ? 16 : 0);
    }
    cp_async_wait_all();
    __syncthreads();

    // S = Q·Kᵀ for the warp's 16 rows × 64 keys: 8 tiles of 8 keys.
    float s[kKeys / 8][4];
#pragma unroll
    for (int t = 0; t < kKeys / 8; ++t) s[t][0] = s[t][1] = s[t][2] = s[t][3] = 0.0f;
#pragma unroll
    for (int kb = 0; kb < D; kb += 16) {
      uint32_t a[4];
      const int m = lane >> 3;
      ldmatrix_x4(a, Qs + (warp * 16 + (m & 1) * 8 + (lane & 7)) * kStride + kb + (m >> 1) * 8);
#pragma unroll
      for (int nb = 0; nb < kKeys; nb += 16) {
        uint32_t b[4];
        ldmatrix_x4(b, Ks + (nb + (m >> 1) * 8 + (lane & 7)) * kStride + kb + (m & 1) * 8);
        Mma<E>::run(s[nb / 8], a, b);
        Mma<E>::run(s[nb / 8 + 1], a, b + 2);
      }
    }

    // Causal mask and online softmax (base 2); rows are shared by the 4 lanes of a quad.
    float mx0 = m0, mx1 = m1;
#pragma unroll
    for (int t = 0; t < kKeys / 8; ++t) {
      const int key = k0 + t * 8 + 2 * c;
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        s[t][e] = key + e <= qp0 ? s[t][e] * sl2 : -INFINITY;
        s[t][2 + e] = key + e <= qp1 ? s[t][2 + e] * sl2 : -INFINITY;
        mx0 = fmaxf(mx0, s[t][e]);
        mx1 = fmaxf(mx1, s[t][2 + e]);
      }
    }
#pragma unroll
    for (int sh = 1; sh <= 2; sh <<= 1) {
      mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, sh));
      mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, sh));
    }
    // A row with nothing visible yet keeps max −inf: subtract 0 instead (every p is then 0).
    const float base0 = mx0 == -INFINITY ? 0.0f : mx0, base1 = mx1 == -INFINITY ? 0.0f : mx1;
    const float corr0 = exp2f(m0 - base0), corr1 = exp2f(m1 - base1);
    m0 = mx0;
    m1 = mx1;
    l0 *= corr0;
    l1 *= corr1;
#pragma unroll
    for (int t = 0; t < kDimTiles; ++t) {
      o[t][0] *= corr0;
      o[t][1] *= corr0;
      o[t][2] *= corr1;
      o[t][3] *= corr1;
    }
#pragma unroll
    for (int t = 0; t < kKeys / 8; ++t) {
      s[t][0] = exp2f(s[t][0] - base0);
      s[t][1] = exp2f(s[t][1] - base0);
      s[t][2] = exp2f(s[t][2] - base1);
      s[t][3] = exp2f(s[t][3] - base1);
      l0 += s[t][0] + s[t][1];
      l1 += s[t][2] + s[t][3];
    }

    // O += P·V: P from the S accumulators, V through transposing ldmatrix.
#pragma unroll
    for (int kb = 0; kb < kKeys; kb += 16) {
      const int t = kb / 8;
      uint32_t a[4] = {Mma<E>::pack(s[t][0], s[t][1]), Mma<E>::pack(s[t][2], s[t][3]),
                       Mma<E>::pack(s[t + 1][0], s[t + 1][1]),
                       Mma<E>::pack(s[t + 1][2], s[t + 1][3])};
      const int m = lane >> 3;
#pragma unroll
      for (int nb = 0; nb < D; nb += 16) {
        uint32_t b[4];
        ldmatrix_x4_trans(b, Vs + (kb + (m & 1) * 8 + (lane & 7)) * kStride + nb + (m >> 1) * 8);
        Mma<E>::run(o[nb / 8], a, b);
        Mma<E>::run(o[nb / 8 + 1], a, b + 2);
      }
    }
  }

#pragma unroll
  for (int sh = 1; sh <= 2; sh <<= 1) {
    l0 += __shfl_xor_sync(0xffffffffu, l0, sh);
    l1 += __shfl_xor_sync(0xffffffffu, l1, sh);
  }
  const float inv0 = 1.0f / l0, inv1 = 1.0f / l1;
  const int r0 = i0 + row0, r1 = r0 + 8;
#pragma unroll
  for (int t = 0; t < kDimTiles; ++t) {
    const int col = t * 8 + 2 * c;
    if (r0 < n)
      *reinterpret_cast<float2*>(out + (int64_t(r0) * num_heads + h) * D + col) =
          make_float2(o[t][0] * inv0, o[t][1] * inv0);
    if (r1 < n)
      *reinterpret_cast<float2*>(out + (int64_t(r1) * num_heads + h) * D + col) =
          make_float2(o[t][2] * inv1, o[t][3] * inv1);
  }
}

template <int D, class E>
void launch(const DeviceLayer& layer, const DeviceBatch& batch, const float* q, int n,
            int num_heads, float scale, float* out, cudaStream_t stream) {
  const size_t smem = size_t(kRows + 2 * kKeys) * (D + 8) * sizeof(typename E::T);
  static const bool configured = [&] {
    return cudaFuncSetAttribute(prefill_attention_kernel<D, E>,
                                cudaFuncAttributeMaxDynamicSharedMemorySize,
                                static_cast<int>(smem)) == cudaSuccess;
  }();
  (void)configured;  // a failure shows as a launch error, which the caller checks
  const dim3 grid(ceil_div(n, kRows), num_heads);
  prefill_attention_kernel<D, E>
      <<<grid, kWarps * 32, smem, stream>>>(layer, batch, q, n, num_heads, scale, out);
}

template <class E>
void launch_dim(const DeviceLayer& layer, const DeviceBatch& batch, const float* q, int n,
                int num_heads, float scale, float* out, cudaStream_t stream) {
  switch (layer.head_dim) {
    case 16:
      return launch<16, E>(layer, batch, q, n, num_heads, scale, out, stream);
    case 32:
      return launch<32, E>(layer, batch, q, n, num_heads, scale, out, stream);
    case 64:
      return launch<64, E>(layer, batch, q, n, num_heads, scale, out, stream);
    case 128:
      return launch<128, E>(layer, batch, q, n, num_heads, scale, out, stream);
    default:
      return launch<256, E>(layer, batch, q, n, num_heads, scale, out, stream);
  }
}

}  // namespace

void launch_prefill_attention(const DeviceLayer& layer, const DeviceBatch& batch, const float* q,
                              int n, int num_heads, float scale, float* out, cudaStream_t stream) {
  if (layer.dtype == DType::kBF16) {
    launch_dim<BF16>(layer, batch, q, n, num_heads, scale, out, stream);
  } else {
    launch_dim<F16>(layer, batch, q, n, num_heads, scale, out, stream);
  }
}

}  // namespace adamas::cuda::detail
