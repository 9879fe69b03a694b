// Estimate: exact L1 (or squared L2) distances between query codes and the key codes of the
// paged cache, for all KV heads and sequences of a batch in one launch.
//
// Grid (chunk of pages, KV head, sequence). A thread takes two adjacent slots of a page, so every
// plane word is one 16-byte load, coalesced over the page's slots; the key's thermometer planes
// come from its binary planes with AND/OR (codes.h), and each query head of the GQA group reuses
// them. The queries come as codes, or raw (fp32) and are encoded by the block itself, which saves
// the launch of a separate encode kernel. The optional histogram for top-k is kept per block in
// shared memory and flushed with one atomic per non-empty bin.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>

#include "cuda/codes_device.cuh"
#include "cuda/device_common.cuh"
#include "cuda/launch.h"

namespace adamas::cuda::detail {
namespace {

constexpr int kThreads = 256;
constexpr int kMinSlotsPerBlock = 2 * kThreads;  // whole pages per block, about
constexpr int kMaxSlotsPerBlock = 16 * kThreads;
constexpr int kMaxGroup = 16;  // query heads per KV head kept in shared memory

// Thermometer planes t[m] = (bucket ≥ m + 1) from the binary planes s[p] (bit p of the bucket).
template <int BITS>
__device__ __forceinline__ void thermometer(const uint64_t (&s)[BITS],
                                            uint64_t (&t)[(1 << BITS) - 1]) {
  if constexpr (BITS == 1) {
    t[0] = s[0];
  } else if constexpr (BITS == 2) {
    t[0] = s[0] | s[1];
    t[1] = s[1];
    t[2] = s[0] & s[1];
  } else {
    const uint64_t s10_or = s[1] | s[0], s10_and = s[1] & s[0];
    t[0] = s[2] | s10_or;
    t[1] = s[2] | s[1];
    t[2] = s[2] | s10_and;
    t[3] = s[2];
    t[4] = s[2] & s10_or;
    t[5] = s[2] & s[1];
    t[6] = s[2] & s10_and;
  }
}

template <int BITS, bool L2>
__device__ __forceinline__ int distance_word(const uint64_t (&t)[(1 << BITS) - 1],
                                             const uint64_t* qplanes, int words, int w) {
  constexpr int T = (1 << BITS) - 1;
  uint64_t x[T];
  int acc = 0;
#pragma unroll
  for (int m = 0; m < T; ++m) {
    x[m] = t[m] ^ qplanes[m * words + w];
    acc += __popcll(x[m]);
  }
  if constexpr (L2) {  // Δ² = |Δ| + 2·C(|Δ|, 2): the set planes of one dimension form a run
    int pairs = 0;
#pragma unroll
    for (int a = 0; a < T; ++a)
#pragma unroll
      for (int b = a + 1; b < T; ++b) pairs += __popcll(x[a] & x[b]);
    acc += 2 * pairs;
  }
  return acc;
}

// The BITS × WORDS code words of two adjacent slots (one 16-byte load per word).
template <int BITS, int WORDS>
struct SlotPair {
  uint64_t s0[WORDS][BITS], s1[WORDS][BITS];

  __device__ __forceinline__ void load(const uint64_t* page, int stride, int slot) {
#pragma unroll
    for (int w = 0; w < WORDS; ++w) {
#pragma unroll
      for (int p = 0; p < BITS; ++p) {
        const uint4 v = load16_stream(page + static_cast<size_t>(p * WORDS + w) * stride + slot);
        s0[w][p] = (static_cast<uint64_t>(v.y) << 32) | v.x;
        s1[w][p] = (static_cast<uint64_t>(v.w) << 32) | v.z;
      }
    }
  }
};

// Fused query encoding: the block's warps encode the GQA group's raw queries into shared memory.
template <int E, int T, int WORDS>
__device__ __forceinline__ void encode_group(const DeviceLayer& layer, const float* q, int group,
                                             float scale, int kvh, uint64_t* qplanes) {
  const int lane = threadIdx.x & 31;
  for (int h = threadIdx.x >> 5; h < group; h += kThreads / 32) {
    const uint64_t mine = encode_query_warp<E>(
        q + static_cast<size_t>(h) * layer.head_dim, layer.head_dim, layer.hadamard, scale,
        layer.thresholds + kvh * kMaxThermoPlanes, layer.bits, lane);
    if (lane < T * WORDS) qplanes[h * T * WORDS + lane] = mine;
  }
}

// 2-bit L1 from the binary planes, with two popcounts per word instead of three (popcount issues
// at a quarter of the logic-op rate, and GQA groups run one distance per query head). Per
// dimension, with q = 2·qh + ql and k = 2·kh + kl:  |q − k| = r0 + 2·r1  where
//   r0 = ql ⊕ kl   (the parity of the difference)
//   r1 = (qh ⊕ kh) ∧ ¬[(qh ∧ ¬ql ∧ kl) ∨ (kh ∧ ¬kl ∧ ql)]   (|q − k| ≥ 2: high bits differ,
//        except 2 vs 1 in either order).
// Per query word: ql, qh and a = qh ∧ ¬ql; per key word: kl, kh and c = kh ∧ ¬kl.
struct QueryBits2 {
  uint64_t ql, qh, a;
};
__device__ __forceinline__ int l1_bits2(const QueryBits2& q, uint64_t kl, uint64_t kh, uint64_t c) {
  const uint64_t r0 = q.ql ^ kl;
  const uint64_t r1 = (q.qh ^ kh) & ~((q.a & kl) | (c & q.ql));
  return __popcll(r0) + 2 * __popcll(r1);
}

template <int BITS, bool L2, int WORDS>
__global__ void __launch_bounds__(kThreads,
                                  BITS <= 2 && WORDS <= 2 ? 4 : 1)  // ≥ 4 blocks/SM: common codes
    estimate_kernel(DeviceLayer layer, DeviceBatch batch, EstimateArgs args, int group,
                    int pages_per_block, int hist_size, bool shared_hist, float scale) {
  constexpr int T = (1 << BITS) - 1;
  extern __shared__ uint32_t smem_hist[];
  __shared__ uint64_t qplanes[kMaxGroup * T * WORDS];
  constexpr bool kBits2 = BITS == 2 && !L2;
  __shared__ QueryBits2 qbits[kBits2 ? kMaxGroup * WORDS : 1];

  const int b = blockIdx.z, kvh = blockIdx.y;
  const int n = batch.lengths[b] - (args.exclude_last ? 1 : 0);
  const int P = layer.page_size;
  const int first_page = blockIdx.x * pages_per_block;
  if (first_page * P >= n) return;  // whole block: no syncs skipped by some threads only
  const int last_page = min(first_page + pages_per_block, (n + P - 1) / P);
  const int rows = args.sum_heads ? 1 : group;
  const int stride = layer.slot_stride();
  const int pairs_per_page = stride / 2;
  const int items = (last_page - first_page) * pairs_per_page;
  const uint64_t* head_codes = layer.code_pool + static_cast<size_t>(kvh) * layer.code_head_stride;
  const int32_t* table = batch.page_indices + batch.page_indptr[b];  // CSR: sequence b's pages

  // Work item → (position, page words); the first item's loads are issued before the block
  // waits for the query codes, and each later item's before the previous one is computed.
  auto locate = [&](int item, int& pos, bool& valid, bool& second) -> const uint64_t* {
    const int page_index = first_page + item / pairs_per_page;
    const int slot = 2 * (item % pairs_per_page);
    pos = page_index * P + slot;
    valid = item < items && slot < P && pos < n;
    second = valid && slot + 1 < P && pos + 1 < n;
    if (!valid) return nullptr;
    return head_codes + static_cast<size_t>(table[page_index]) * layer.code_page_stride + slot;
  };
  SlotPair<BITS, WORDS> cur;
  int pos;
  bool valid, second;
  {
    const uint64_t* p = locate(threadIdx.x, pos, valid, second);
    if (valid) cur.load(p, stride, 0);
  }

  if (args.queries != nullptr) {
    const float* q =
        args.queries + (static_cast<size_t>(b) * args.num_q_heads + kvh * group) * layer.head_dim;
    if constexpr (WORDS == 1) {
      if (layer.head_dim == 64) {
        encode_group<2, T, WORDS>(layer, q, group, scale, kvh, qplanes);
      } else {
        encode_group<1, T, WORDS>(layer, q, group, scale, kvh, qplanes);
      }
    } else {
      encode_group<WORDS * 2, T, WORDS>(layer, q, group, scale, kvh, qplanes);
    }
  } else {
    for (int i = threadIdx.x; i < group * T * WORDS; i += kThreads) {
      const int h = i / (T * WORDS), mw = i % (T * WORDS);
      qplanes[i] = args.q[static_cast<size_t>(b) * args.num_q_heads + kvh * group + h].planes[mw];
    }
  }
  if (shared_hist) {
    for (int i = threadIdx.x; i < rows * hist_size; i += kThreads) smem_hist[i] = 0;
  }
  __syncthreads();
  if constexpr (kBits2) {  // thermometer t1, t2, t3 → binary planes
    for (int i = threadIdx.x; i < group * WORDS; i += kThreads) {
      const int h = i / WORDS, w = i % WORDS;
      const uint64_t* t = qplanes + h * T * WORDS;
      const uint64_t qh = t[1 * WORDS + w], ql = (t[w] & ~qh) | t[2 * WORDS + w];
      qbits[i] = QueryBits2{ql, qh, qh & ~ql};
    }
    __syncthreads();
  }

  const size_t row0 =
      args.sum_heads ? static_cast<size_t>(b) * layer.num_kv_heads + kvh
                     : static_cast<size_t>(b) * args.num_q_heads + static_cast<size_t>(kvh) * group;

  for (int item = threadIdx.x; item < items; item += kThreads) {
    SlotPair<BITS, WORDS> next;
    int next_pos;
    bool next_valid, next_second;
    {
      const uint64_t* p = locate(item + kThreads, next_pos, next_valid, next_second);
      if (next_valid) next.load(p, stride, 0);
    }
    if (valid) {
      uint64_t t0[WORDS][T], t1[WORDS][T];  // thermometer planes (general path)
      uint64_t c0[WORDS], c1[WORDS];        // kh ∧ ¬kl (2-bit L1 path)
#pragma unroll
      for (int w = 0; w < WORDS; ++w) {
        if constexpr (kBits2) {
          c0[w] = cur.s0[w][1] & ~cur.s0[w][0];
          c1[w] = cur.s1[w][1] & ~cur.s1[w][0];
        } else {
          thermometer<BITS>(cur.s0[w], t0[w]);
          thermometer<BITS>(cur.s1[w], t1[w]);
        }
      }
      int sum0 = 0, sum1 = 0;
      for (int h = 0; h < group; ++h) {
        const uint64_t* qh = qplanes + h * T * WORDS;
        int d0 = 0, d1 = 0;
#pragma unroll
        for (int w = 0; w < WORDS; ++w) {
          if constexpr (kBits2) {
            const QueryBits2 qb = qbits[h * WORDS + w];
            d0 += l1_bits2(qb, cur.s0[w][0], cur.s0[w][1], c0[w]);
            d1 += l1_bits2(qb, cur.s1[w][0], cur.s1[w][1], c1[w]);
          } else {
            d0 += distance_word<BITS, L2>(t0[w], qh, WORDS, w);
            d1 += distance_word<BITS, L2>(t1[w], qh, WORDS, w);
          }
        }
        if (args.sum_heads) {
          sum0 += d0;
          sum1 += d1;
          if (h + 1 < group) continue;
          d0 = sum0;
          d1 = sum1;
        }
        const int r = args.sum_heads ? 0 : h;
        uint16_t* out = args.out + (row0 + r) * args.out_stride + pos;
        out[0] = static_cast<uint16_t>(d0);
        if (second) out[1] = static_cast<uint16_t>(d1);
        if (args.histogram != nullptr) {
          if (shared_hist) {
            atomicAdd(&smem_hist[r * hist_size + d0], 1u);
            if (second) atomicAdd(&smem_hist[r * hist_size + d1], 1u);
          } else {
            uint32_t* hist = args.histogram + (row0 + r) * hist_size;
            atomicAdd(&hist[d0], 1u);
            if (second) atomicAdd(&hist[d1], 1u);
          }
        }
      }
    }
    cur = next;
    pos = next_pos;
    valid = next_valid;
    second = next_second;
  }
  if (args.histogram != nullptr && shared_hist) {
    __syncthreads();
    for (int i = threadIdx.x; i < rows * hist_size; i += kThreads) {
      const uint32_t c = smem_hist[i];
      if (c != 0) atomicAdd(&args.histogram[(row0 + i / hist_size) * hist_size + i % hist_size], c);
    }
  }
}

template <int BITS, bool L2, int WORDS>
void launch_typed(const DeviceLayer& layer, const DeviceBatch& batch, const EstimateArgs& args,
                  int group, int hist_size, cudaStream_t stream) {
  // Whole pages per block, about two waves of blocks (4 resident per SM), each thread at least
  // one pair of slots and at most 8: fewer blocks amortize the barriers and histogram flushes,
  // enough blocks keep every SM busy on short contexts.
  const int P = layer.page_size;
  const int max_pages = ceil_div(batch.max_length, P);
  const long long total_slots =
      static_cast<long long>(layer.num_kv_heads) * batch.batch * max_pages * P;
  const long long slots = std::clamp<long long>(total_slots / (2LL * 4 * sm_count()),
                                                kMinSlotsPerBlock, kMaxSlotsPerBlock);
  const int pages_per_block = std::max(1, static_cast<int>(slots / P));
  const dim3 grid(ceil_div(max_pages, pages_per_block), layer.num_kv_heads, batch.batch);
  const int rows = args.sum_heads ? 1 : group;
  const size_t hist_bytes = static_cast<size_t>(rows) * hist_size * sizeof(uint32_t);
  const bool shared_hist = args.histogram != nullptr && hist_bytes <= 32 * 1024;
  estimate_kernel<BITS, L2, WORDS><<<grid, kThreads, shared_hist ? hist_bytes : 0, stream>>>(
      layer, batch, args, group, pages_per_block, hist_size, shared_hist,
      1.0f / std::sqrt(static_cast<float>(layer.head_dim)));
}

template <int BITS, bool L2>
void launch_words(const DeviceLayer& layer, const DeviceBatch& batch, const EstimateArgs& args,
                  int group, int hist_size, cudaStream_t stream) {
  switch (layer.words()) {
    case 1:
      return launch_typed<BITS, L2, 1>(layer, batch, args, group, hist_size, stream);
    case 2:
      return launch_typed<BITS, L2, 2>(layer, batch, args, group, hist_size, stream);
    default:
      return launch_typed<BITS, L2, 4>(layer, batch, args, group, hist_size, stream);
  }
}

}  // namespace

void launch_estimate(const DeviceLayer& layer, const DeviceBatch& batch, const EstimateArgs& args,
                     int histogram_size, cudaStream_t stream) {
  const int group = args.num_q_heads / layer.num_kv_heads;
  const bool l2 = args.distance == Distance::kL2;
  switch (layer.bits * 2 + l2) {
    case 2:
      return launch_words<1, false>(layer, batch, args, group, histogram_size, stream);
    case 3:
      return launch_words<1, true>(layer, batch, args, group, histogram_size, stream);
    case 4:
      return launch_words<2, false>(layer, batch, args, group, histogram_size, stream);
    case 5:
      return launch_words<2, true>(layer, batch, args, group, histogram_size, stream);
    case 6:
      return launch_words<3, false>(layer, batch, args, group, histogram_size, stream);
    default:
      return launch_words<3, true>(layer, batch, args, group, histogram_size, stream);
  }
}

}  // namespace adamas::cuda::detail
