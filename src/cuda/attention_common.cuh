// Internal: what the decode-attention kernels share (attention_kernels.cu: CUDA cores, every
// mode; dense_attention_mma.cu: tensor cores, dense GQA): the launch parameters, the
// online-softmax helpers and the end of a split — its (max, sum, unnormalized output) to the
// workspace, and the merge of all splits by the last block of a unit to finish.
#pragma once

#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>

#include "cuda/launch.h"

namespace adamas::cuda::detail {

constexpr int kWarps = 4;
constexpr int kThreads = 32 * kWarps;
constexpr unsigned kFull = 0xffffffffu;
constexpr float kLog2e = 1.4426950408889634f;

// exp2(m − M), 0 for an empty state (m = −inf), also when M is −inf.
__device__ __forceinline__ float rescale(float m, float big_m) {
  return m == -INFINITY ? 0.0f : exp2f(m - big_m);
}

// Per unit: the merge keeps one weight per split in shared memory.
constexpr int kMaxSplits = kMaxFusedSplits;

struct Split {
  int splits;
  int split_len;  // positions (dense) or index entries (sparse) per split
};

// Everything a launch needs, passed by value.
struct Params {
  DeviceLayer layer;
  DeviceBatch batch;
  const float* q;
  int num_q_heads;
  SparseArgs sparse;
  float q_scale;  // scale · log2 e
  Split split;
  float* part_o;       // [rows][splits][d]
  float* part_ml;      // [rows][splits][2]: max, sum
  uint32_t* counters;  // [batch][units]
  float* out;
  FusedSelect select;  // kSelect
};

// A block's state after its key loop: per warp w and head g < heads, the unnormalized output
// sm_o[w][g][0, d) and (max, sum) in sm_ml[w][g] (written, then __syncthreads by the caller).
// Writes the split's partials of rows qh0 .. qh0 + heads − 1 of sequence blockIdx.z; the last
// split of the unit (blockIdx.z, blockIdx.y) to arrive merges all splits into params.out.
template <int G, int DS>
__device__ void finish_split(const Params& params, float (*sm_o)[G][DS], float (*sm_ml)[G][2],
                             int heads, int qh0) {
  const int b = blockIdx.z, s = blockIdx.x;
  const int d = params.layer.head_dim, num_q_heads = params.num_q_heads;
  const Split split = params.split;
  float* __restrict__ part_o = params.part_o;
  float* __restrict__ part_ml = params.part_ml;
  float* __restrict__ out = params.out;
  for (int g = 0; g < heads; ++g) {
    float mx = -INFINITY;
    for (int w = 0; w < kWarps; ++w) mx = fmaxf(mx, sm_ml[w][g][0]);
    const size_t row = static_cast<size_t>(b) * num_q_heads + qh0 + g;
    const size_t part = row * split.splits + s;
    for (int i = threadIdx.x; i < d; i += kThreads) {
      float acc = 0.0f;
      for (int w = 0; w < kWarps; ++w) acc += sm_o[w][g][i] * rescale(sm_ml[w][g][0], mx);
      part_o[part * d + i] = acc;
    }
    if (threadIdx.x == 0) {
      float sum = 0.0f;
      for (int w = 0; w < kWarps; ++w) sum += sm_ml[w][g][1] * rescale(sm_ml[w][g][0], mx);
      part_ml[part * 2] = mx;
      part_ml[part * 2 + 1] = sum;
    }
  }

  // The last split of this unit to arrive merges the splits (threadFenceReduction pattern).
  __shared__ bool last;
  __threadfence();
  __syncthreads();
  if (threadIdx.x == 0) {
    uint32_t* counter = params.counters + static_cast<size_t>(b) * gridDim.y + blockIdx.y;
    last = atomicAdd(counter, 1u) == static_cast<uint32_t>(split.splits - 1);
    if (last) *counter = 0;  // ready for the next launch
  }
  __syncthreads();
  if (!last) return;
  __threadfence();
  // Merge, with every thread busy and every load independent: a thread takes 4 dims of one head
  // (an item) and a share of the splits (every R-th), folds them in online-softmax style in
  // batches of 4 loads, and the R shares of an item are combined through shared memory. (One
  // head at a time, one split per step, was a chain of dependent L2 round trips per head: the
  // tail of a short GQA step, whose unit has 4–8 heads and ~60 splits.)
  const int S = split.splits, tid = threadIdx.x;
  const int items = heads * (d / 4);
  const int R = items >= kThreads ? 1 : kThreads / items;
  __shared__ float4 sm_acc[kThreads];
  __shared__ float2 sm_ms[kThreads];
  for (int first = 0; first < items; first += kThreads) {
    const int item = first + tid % items, r = tid / items;
    const bool active = item < items && r < R;
    const int head = item / (d / 4), dim = 4 * (item % (d / 4));
    const size_t row = static_cast<size_t>(b) * num_q_heads + qh0 + min(head, heads - 1);
    const float2* ml = reinterpret_cast<const float2*>(part_ml) + row * S;
    const float* o_row = part_o + row * S * d + dim;
    float big_m = -INFINITY, sum = 0.0f;
    float4 acc = make_float4(0.f, 0.f, 0.f, 0.f);
    for (int t0 = active ? r : S; t0 < S; t0 += 4 * R) {
      float2 mls[4];
      float4 os[4];
#pragma unroll
      for (int u = 0; u < 4; ++u) {
        const int t = t0 + u * R;
        mls[u] = t < S ? __ldcg(ml + t) : make_float2(-INFINITY, 0.f);
        os[u] = t < S ? __ldcg(reinterpret_cast<const float4*>(o_row + static_cast<size_t>(t) * d))
                      : make_float4(0.f, 0.f, 0.f, 0.f);
      }
#pragma unroll
      for (int u = 0; u < 4; ++u) {
        if (mls[u].x == -INFINITY) continue;  // an empty split: l = 0, o = 0
        const float nm = fmaxf(big_m, mls[u].x);
        const float a = rescale(big_m, nm), w = exp2f(mls[u].x - nm);
        sum = sum * a + mls[u].y * w;
        acc = make_float4(acc.x * a + os[u].x * w, acc.y * a + os[u].y * w, acc.z * a + os[u].z * w,
                          acc.w * a + os[u].w * w);
        big_m = nm;
      }
    }
    if (R > 1) {
      __syncthreads();  // the previous round's combine has read sm_*
      sm_acc[tid] = acc;
      sm_ms[tid] = make_float2(big_m, sum);
      __syncthreads();
      if (active && r == 0) {
        for (int k = 1; k < R; ++k) {
          const float2 ms = sm_ms[tid + k * items];
          const float4 o = sm_acc[tid + k * items];
          const float nm = fmaxf(big_m, ms.x);
          const float a = rescale(big_m, nm), w = rescale(ms.x, nm);
          sum = sum * a + ms.y * w;
          acc = make_float4(acc.x * a + o.x * w, acc.y * a + o.y * w, acc.z * a + o.z * w,
                            acc.w * a + o.w * w);
          big_m = nm;
        }
      }
    }
    if (active && r == 0) {
      float* o = out + row * d + dim;  // the caller's buffer: no alignment beyond 4 bytes assumed
      o[0] = acc.x / sum;
      o[1] = acc.y / sum;
      o[2] = acc.z / sum;
      o[3] = acc.w / sum;
    }
  }
}

// The tensor-core dense kernel (dense_attention_mma.cu) takes head_dim 64 and 128, up to
// kMmaHeads query heads of a KV head per block, and splits of a multiple of kTile keys.
inline constexpr int kTile = 16;
inline constexpr int kMmaHeads = 8;
inline bool dense_mma_supported(const DeviceLayer& layer) {
  return layer.head_dim == 64 || layer.head_dim == 128;
}
// Resident blocks per SM of the kernel for this cache dtype and head_dim (queried once).
int dense_mma_blocks_per_sm(DType dtype, int head_dim);
void launch_dense_mma(const Params& p, dim3 grid, cudaStream_t stream);

}  // namespace adamas::cuda::detail
