// Dense decode attention on tensor cores (head_dim 64 or 128): the kernel behind
// dense_decode_attention for those sizes, same splits, partials and merge as the CUDA-core kernel
// (attention_common.cuh). A block (4 warps) takes one split of one (sequence, KV head, up to 8 of
// its query heads); each warp walks the split in tiles of 16 keys:
//
//   S  = Q·Kᵀ   mma m16n8k16 with the query heads as M (rows 0..7; rows 8..15 are zero) and the
//               16 keys as two n-tiles of 8;
//   Oᵀ = Vᵀ·Pᵀ  mma m16n8k16 with head_dim as M and the heads as N: the S accumulators of the two
//               key n-tiles are, element for element, the Pᵀ operand (thread (g, t) holds head g,
//               keys 2t, 2t+1, 2t+8, 2t+9 in both), so P never leaves registers and no M rows are
//               wasted on the output.
//
// Operands come straight from global memory in 16-byte loads, no shared memory: a dot product
// does not care in which order the dimensions are summed, so each thread loads whole 16-byte
// pieces of a key row and the query is laid out in the same permuted order (see load_q). V goes
// into the A operand of Vᵀ·Pᵀ with one byte permute per register.
//
// Exact to fp32 level, not to the operand precision: q is split into 16-bit pieces whose sum is
// q (hi + lo in f16, 22 bits; hi + mid + lo in bf16, 24 bits), each multiplied by the stored key
// (products are exact in the fp32 accumulator); p is split the same way into two pieces. Scores
// are in log2 units (q pre-scaled by scale·log2 e). The tensor cores have ample headroom: at
// 16 keys per warp-tile a KV head's step costs 4 mma per key against ~28 clocks of HBM per key
// and SM.
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <type_traits>

#include "cuda/attention_common.cuh"
#include "cuda/device_common.cuh"
#include "cuda/launch.h"
#include "cuda/mma.cuh"

namespace adamas::cuda::detail {
namespace {

// 16-bit pieces of two floats (x0, x1) whose sums are x0, x1 to fp32 precision: piece i holds
// the rounding residual of pieces 0 .. i−1, packed (x0 in the low half).
template <class E, int PIECES>
__device__ __forceinline__ void split_pair(float x0, float x1, uint32_t (&out)[PIECES]) {
#pragma unroll
  for (int i = 0; i < PIECES; ++i) {
    out[i] = Mma<E>::pack(x0, x1);
    const float2 f = E::pair(out[i]);
    x0 -= f.x;  // exact: the residual of a rounding to fewer bits fits an fp32
    x1 -= f.y;
  }
}

template <class E, int D>
__global__ void __launch_bounds__(kThreads, 4) dense_mma_kernel(Params params) {
  constexpr int QP = std::is_same_v<E, BF16> ? 3 : 2;  // pieces of q
  constexpr int PP = 2;                                // pieces of p
  constexpr int KI = D / 32;           // 16-byte K loads per key row and thread (4 threads per row)
  constexpr int VI = D / 64;           // 16-byte V loads per key row and thread (8 threads per row)
  constexpr int KS = D / 16;           // k-steps of Q·Kᵀ
  constexpr int MT = D / 16;           // m-tiles of Vᵀ·Pᵀ
  constexpr int NC = 2 * KI + 4 * VI;  // 16-byte pieces of a tile per thread
  const DeviceLayer& layer = params.layer;
  const DeviceBatch& batch = params.batch;
  const int num_q_heads = params.num_q_heads;
  const int b = blockIdx.z, s = blockIdx.x;
  const int group = num_q_heads / layer.num_kv_heads;
  const int chunks = (group + kMmaHeads - 1) / kMmaHeads;
  const int kvh = blockIdx.y / chunks;
  const int qh0 = kvh * group + (blockIdx.y % chunks) * kMmaHeads;
  const int heads = min(kMmaHeads, kvh * group + group - qh0);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int g = lane >> 2, t = lane & 3;

  const uint32_t zero = 0;

  float o[MT][4];  // Oᵀ accumulators: (dim, head) tiles
#pragma unroll
  for (int j = 0; j < MT; ++j) o[j][0] = o[j][1] = o[j][2] = o[j][3] = 0.f;
  float m = -INFINITY, l = 0.f;  // head g's running max and this thread's part of its sum

  const int n = batch.lengths[b];
  const int lo = s * params.split.split_len;  // a multiple of kTile
  const int hi = min(n, lo + params.split.split_len);
  const std::byte* k_head = layer.k_pool + static_cast<size_t>(kvh) * layer.kv_head_stride;
  const std::byte* v_head = layer.v_pool + static_cast<size_t>(kvh) * layer.kv_head_stride;
  const int32_t* pages = batch.page_indices + batch.page_indptr[b];
  const int P = layer.page_size;
  const bool tile_in_page = P % kTile == 0;  // tiles start at multiples of kTile
  constexpr size_t kRowBytes = 2 * D;

  // Byte offset of key `pos` (< n) of this head from its page; for a tile within one page, of
  // the tile's first key.
  auto row_offset = [&](int pos) {
    return static_cast<size_t>(pages[pos / P]) * layer.kv_page_stride +
           static_cast<size_t>(pos % P) * kRowBytes;
  };
  // The page lookup of a warp's next tile is issued a tile ahead (one dependent round trip less).
  auto tile_offset = [&](int base) -> size_t {
    const int pos = tile_in_page ? base : base + (lane & 15);
    return pos < hi ? row_offset(pos) : 0;
  };

  int base = lo + warp * kTile;
  size_t off_next = base < hi ? tile_offset(base) : 0;  // before the q round trip

  // Q as the A operand, permuted to match the K loads: k-step s = 2i + h takes, for thread
  // (g, t), dims 32i + 8t + 4h + {0, 1} (low k) and + {2, 3} (high k) of head g. Every warp uses
  // the same fragments: they wait in shared memory (one word per lane, no bank conflicts), which
  // keeps the registers for loads in flight.
  __shared__ uint32_t sm_q[KS][2][QP][32];
  if (warp == 0) {
    const float* qrow =
        params.q + (static_cast<size_t>(b) * num_q_heads + qh0 + min(g, heads - 1)) * D;
#pragma unroll
    for (int i = 0; i < KI; ++i) {
      float x[8];
#pragma unroll
      for (int e = 0; e < 8; ++e)
        x[e] = g < heads ? qrow[32 * i + 8 * t + e] * params.q_scale : 0.f;
#pragma unroll
      for (int h = 0; h < 2; ++h)
#pragma unroll
        for (int c = 0; c < 2; ++c) {
          uint32_t pieces[QP];
          split_pair<E, QP>(x[4 * h + 2 * c], x[4 * h + 2 * c + 1], pieces);
#pragma unroll
          for (int p = 0; p < QP; ++p) sm_q[2 * i + h][c][p][lane] = pieces[p];
        }
    }
  }
  __syncthreads();
  // This thread's keys of a tile: K rows 8h + g (h = 0, 1), V rows 2t, 2t+1, 2t+8, 2t+9; piece c
  // of the tile is K row kkey[c / KI], bytes 64(c % KI) + 16t for c < 2·KI, then V row
  // vkey[(c − 2·KI) / VI], bytes 128((c − 2·KI) % VI) + 16g.
  const int kkey[2] = {g, 8 + g};
  const int vkey[4] = {2 * t, 2 * t + 1, 2 * t + 8, 2 * t + 9};
  // Address and validity of piece c of the tile at `tb` whose offset lookup gave `off`.
  auto piece = [&](int c, int tb, size_t off, const std::byte*& src) -> bool {
    const bool is_k = c < 2 * KI;
    const int key = is_k ? kkey[c / KI] : vkey[(c - 2 * KI) / VI];
    const size_t row = tile_in_page ? off + key * kRowBytes
                                    : __shfl_sync(kFull, static_cast<unsigned long long>(off), key);
    src = is_k ? k_head + row + 64 * (c % KI) + 16 * t
               : v_head + row + 128 * ((c - 2 * KI) % VI) + 16 * g;
    return tb + key < hi;  // an unread V must be 0, not NaN: p = 0 scales it
  };
  constexpr int kStride = kWarps * kTile;  // between a warp's tiles
  for (; base < hi; base += kStride) {
    uint4 kr[2][KI], vr[4][VI];
    const size_t off_here = off_next;
    if (base + kStride < hi) off_next = tile_offset(base + kStride);
#pragma unroll
    for (int c = 0; c < NC; ++c) {
      const std::byte* src;
      const bool valid = piece(c, base, off_here, src);
      uint4& dst = c < 2 * KI ? kr[c / KI][c % KI] : vr[(c - 2 * KI) / VI][(c - 2 * KI) % VI];
      dst = valid ? load16_stream(src) : make_uint4(0, 0, 0, 0);
    }

    // S = Q·Kᵀ: sc[h] holds head g's scores of keys 8h + 2t, 8h + 2t + 1 (rows g + 8 unused).
    float sc[2][4] = {};
#pragma unroll
    for (int st = 0; st < KS; ++st)
#pragma unroll
      for (int p = 0; p < QP; ++p) {
        const uint32_t a[4] = {sm_q[st][0][p][lane], zero, sm_q[st][1][p][lane], zero};
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          const uint4& w = kr[h][st >> 1];
          const uint32_t bk[2] = {(st & 1) ? w.z : w.x, (st & 1) ? w.w : w.y};
          Mma<E>::run(sc[h], a, bk);
        }
      }
    // Online softmax of head g over the tile (the quad of threads t = 0..3 shares a head).
    float mx = m;
#pragma unroll
    for (int h = 0; h < 2; ++h)
#pragma unroll
      for (int c = 0; c < 2; ++c) {
        if (base + 8 * h + 2 * t + c >= hi) sc[h][c] = -INFINITY;
        mx = fmaxf(mx, sc[h][c]);
      }
    mx = fmaxf(mx, __shfl_xor_sync(kFull, mx, 1));
    mx = fmaxf(mx, __shfl_xor_sync(kFull, mx, 2));
    const float corr = rescale(m, mx);
    const float ref = mx == -INFINITY ? 0.f : mx;  // an all-masked row: p = 0, not NaN
    m = mx;
    l *= corr;
    uint32_t pb[2][PP];  // Pᵀ as the B operand: keys 2t, 2t+1 (h = 0) and 2t+8, 2t+9 (h = 1)
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const float p0 = exp2f(sc[h][0] - ref), p1 = exp2f(sc[h][1] - ref);
      l += p0 + p1;
      split_pair<E, PP>(p0, p1, pb[h]);
    }
    // Oᵀ columns are heads 2t, 2t+1: their rescale factors come from quads 2t, 2t+1.
    const float c0 = __shfl_sync(kFull, corr, 8 * t), c1 = __shfl_sync(kFull, corr, 8 * t + 4);
    // Oᵀ += Vᵀ·Pᵀ: m-tile j covers dims 64(j/4) + 8g + 2(j%4) (row g) and that + 1 (row g+8),
    // which are the low and high halves of word j%4 of this thread's V load j/4.
#pragma unroll
    for (int j = 0; j < MT; ++j) {
      o[j][0] *= c0;
      o[j][1] *= c1;
      o[j][2] *= c0;
      o[j][3] *= c1;
      const int i = j / 4, w = j % 4;
      auto word = [&](int r) {
        const uint4& x = vr[r][i];
        return w == 0 ? x.x : w == 1 ? x.y : w == 2 ? x.z : x.w;
      };
      const uint32_t a[4] = {
          __byte_perm(word(0), word(1), 0x5410), __byte_perm(word(0), word(1), 0x7632),
          __byte_perm(word(2), word(3), 0x5410), __byte_perm(word(2), word(3), 0x7632)};
#pragma unroll
      for (int p = 0; p < PP; ++p) {
        const uint32_t bp[2] = {pb[0][p], pb[1][p]};
        Mma<E>::run(o[j], a, bp);
      }
    }
  }

  // The warps' states to shared memory: (m, l) of head g from quad g, Oᵀ columns 2t, 2t+1.
  __shared__ float sm_o[kWarps][kMmaHeads][D];
  __shared__ float sm_ml[kWarps][kMmaHeads][2];
  l += __shfl_xor_sync(kFull, l, 1);
  l += __shfl_xor_sync(kFull, l, 2);
  if (t == 0) {
    sm_ml[warp][g][0] = m;
    sm_ml[warp][g][1] = l;
  }
#pragma unroll
  for (int j = 0; j < MT; ++j) {
    const int dim = 64 * (j / 4) + 8 * g + 2 * (j % 4);
    sm_o[warp][2 * t][dim] = o[j][0];
    sm_o[warp][2 * t + 1][dim] = o[j][1];
    sm_o[warp][2 * t][dim + 1] = o[j][2];
    sm_o[warp][2 * t + 1][dim + 1] = o[j][3];
  }
  __syncthreads();
  finish_split<kMmaHeads, D>(params, sm_o, sm_ml, heads, qh0);
}

template <class E, int D>
const void* kernel_for() {
  return reinterpret_cast<const void*>(&dense_mma_kernel<E, D>);
}
template <class E, int D>
void launch_for(const Params& p, dim3 grid, cudaStream_t stream) {
  dense_mma_kernel<E, D><<<grid, kThreads, 0, stream>>>(p);
}

const void* mma_kernel(DType dtype, int head_dim) {
  if (dtype == DType::kF16) return head_dim == 64 ? kernel_for<F16, 64>() : kernel_for<F16, 128>();
  return head_dim == 64 ? kernel_for<BF16, 64>() : kernel_for<BF16, 128>();
}

}  // namespace

int dense_mma_blocks_per_sm(DType dtype, int head_dim) {
  static int cached[2][2] = {{-1, -1}, {-1, -1}};
  int& c = cached[dtype == DType::kF16 ? 0 : 1][head_dim == 64 ? 0 : 1];
  if (c < 0) {
    int blocks = 0;
    if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, mma_kernel(dtype, head_dim),
                                                      kThreads, 0) != cudaSuccess)
      blocks = 1;
    c = blocks < 1 ? 1 : blocks;
  }
  return c;
}

void launch_dense_mma(const Params& p, dim3 grid, cudaStream_t stream) {
  const bool f16 = p.layer.dtype == DType::kF16;
  if (p.layer.head_dim == 64) {
    if (f16)
      launch_for<F16, 64>(p, grid, stream);
    else
      launch_for<BF16, 64>(p, grid, stream);
  } else {
    if (f16)
      launch_for<F16, 128>(p, grid, stream);
    else
      launch_for<BF16, 128>(p, grid, stream);
  }
}

}  // namespace adamas::cuda::detail
