// Decode attention over the paged cache, split over the key dimension (flash-decoding).
//
// A block (4 warps) takes one split of one (sequence, KV head, group of G query heads) and keeps
// an online-softmax state per query head. A key row of d 16-bit elements is read by d/8 lanes,
// 16 bytes each, so a warp reads 32/(d/8) keys per load instruction, U keys deep, K and V issued
// together before any arithmetic. Each K/V row is read once for the G query heads that share it
// (GQA). The states of the warp's key lanes, then of the warps, are merged, and the split's
// (max, sum, unnormalized output) goes to a workspace; the last split to finish (an arrival
// counter per unit) merges them all and writes the output, so one launch does the whole step.
// Scores are kept in log2 units (q pre-scaled by scale·log2 e) so the softmax uses exp2.
// Dense attention at head_dim 64 and 128 goes to the tensor-core kernel (dense_attention_mma.cu)
// instead; this one serves sparse rows and the other head sizes.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cub/block/block_reduce.cuh>
#include <cub/block/block_scan.cuh>

#include "cuda/attention_common.cuh"
#include "cuda/device_common.cuh"
#include "cuda/launch.h"

namespace adamas::cuda::detail {
namespace {

// Where a block's keys come from.
enum Mode : int {
  kDense = 0,    // every position of the split's range
  kIndices = 1,  // a selection written by select_smallest
  kSelect = 2,   // the block selects them itself from the distances of its chunk (fused top-k)
};

// kSelect: this block's chunk of its row's distances -> the selected positions (relative to the
// chunk start) in `sel`, the same set select_smallest with add_current picks there: every value
// below v*, and the values equal to v* whose rank among them, in position order, is below
// need = k - below (the counts of earlier chunks come from the count pass). The current token
// (position length - 1) is appended by the chunk that holds it. Returns the list length.
constexpr int kSelPerThread = kSelectChunk / kThreads;  // 64

__device__ int select_chunk(const FusedSelect& f, size_t row, int chunk, int n_cand, int budget,
                            uint16_t* sel) {
  using Scan = cub::BlockScan<int, kThreads>;
  using Reduce = cub::BlockReduce<int, kThreads>;
  __shared__ typename Scan::TempStorage scan;
  __shared__ typename Reduce::TempStorage reduce;
  __shared__ int eq0, count;
  const int start = chunk * kSelectChunk;
  const int mine = threadIdx.x * kSelPerThread;
  // Loads first: the chunk's values, the row's threshold and the earlier chunks' counts.
  uint32_t w[kSelPerThread / 2];
  const uint16_t* p = f.values + row * f.value_stride + start + mine;
  if (start + mine + kSelPerThread <= n_cand && (reinterpret_cast<uintptr_t>(p) & 15) == 0) {
#pragma unroll
    for (int i = 0; i < kSelPerThread / 8; ++i) {
      const uint4 x = __ldcs(reinterpret_cast<const uint4*>(p) + i);
      w[4 * i] = x.x;
      w[4 * i + 1] = x.y;
      w[4 * i + 2] = x.z;
      w[4 * i + 3] = x.w;
    }
  } else {
#pragma unroll
    for (int i = 0; i < kSelPerThread / 2; ++i) {
      const uint32_t lo = start + mine + 2 * i < n_cand ? p[2 * i] : 0xffff;
      const uint32_t hi = start + mine + 2 * i + 1 < n_cand ? p[2 * i + 1] : 0xffff;
      w[i] = lo | (hi << 16);
    }
  }
  auto value = [&](int i) { return static_cast<int>((w[i >> 1] >> (16 * (i & 1))) & 0xffff); };
  const uint32_t* meta = f.scratch + row * select_row_words(f.max_length);
  const int k = min(budget - 1, n_cand);
  const int v_star = k == 0 ? 0 : static_cast<int>(meta[0]);
  const int need = k - (k == 0 ? 0 : static_cast<int>(meta[1]));
  int e = 0;
  for (int c = threadIdx.x; c < chunk; c += kThreads)
    e += static_cast<int>(meta[kSelectMeta + c] & 0xffff);
  e = Reduce(reduce).Sum(e);
  if (threadIdx.x == 0) eq0 = e;
  int equal = 0;
#pragma unroll
  for (int i = 0; i < kSelPerThread; ++i) equal += start + mine + i < n_cand && value(i) == v_star;
  int equal_before;
  Scan(scan).ExclusiveSum(equal, equal_before);
  __syncthreads();  // eq0; the scan storage is reused below
  equal_before += eq0;
  uint64_t taken = 0;  // bit i: position mine + i is selected
#pragma unroll
  for (int i = 0; i < kSelPerThread; ++i) {
    if (start + mine + i >= n_cand) break;
    const int v = value(i);
    if (v < v_star) {
      taken |= uint64_t{1} << i;
    } else if (v == v_star) {
      if (equal_before < need) taken |= uint64_t{1} << i;
      ++equal_before;
    }
  }
  int offset, total;
  Scan(scan).ExclusiveSum(__popcll(taken), offset, total);
  while (taken != 0) {
    const int i = __ffsll(static_cast<long long>(taken)) - 1;
    taken &= taken - 1;
    sel[offset++] = static_cast<uint16_t>(mine + i);
  }
  if (threadIdx.x == 0) {
    count = total;
    if (n_cand >= start && n_cand < start + kSelectChunk)
      sel[count++] = static_cast<uint16_t>(n_cand - start);
  }
  __syncthreads();
  return count;
}

template <class Cache, int G, int MODE, int U>
__global__ void __launch_bounds__(kThreads) attention_kernel(Params params) {
  constexpr bool SPARSE = MODE != kDense;
  const DeviceLayer& layer = params.layer;
  const DeviceBatch& batch = params.batch;
  const SparseArgs& sparse = params.sparse;
  const Split split = params.split;
  const float* __restrict__ q = params.q;
  const int num_q_heads = params.num_q_heads;
  const float q_scale = params.q_scale;
  const int b = blockIdx.z, s = blockIdx.x;
  const int d = layer.head_dim, lpk = d / 8, kpw = 32 / lpk;
  const int group = num_q_heads / layer.num_kv_heads;
  const int chunks = (group + G - 1) / G;  // query-head chunks per KV head
  // This block's KV head, first query head, heads in use, and index row (sparse).
  int kvh, qh0, heads;
  size_t index_row = 0;
  if (SPARSE && !sparse.shared_rows) {  // one query head, its own selection
    qh0 = blockIdx.y;
    kvh = qh0 / group;
    heads = 1;
    index_row = static_cast<size_t>(b) * num_q_heads + qh0;
  } else {
    kvh = blockIdx.y / chunks;
    qh0 = kvh * group + (blockIdx.y % chunks) * G;
    heads = min(G, kvh * group + group - qh0);
    index_row = static_cast<size_t>(b) * layer.num_kv_heads + kvh;
  }
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int sub = lane % lpk, sg = lane / lpk;  // dims [8·sub, 8·sub + 8) of key sg

  // Shared memory: the selection list (kSelect) during the key loop, then the warps' states.
  constexpr int kOFloats = kWarps * G * 256;
  constexpr int kSelFloats = MODE == kSelect ? kSelectChunk / 2 + 1 : 0;
  __shared__ float smem[kOFloats > kSelFloats ? kOFloats : kSelFloats];
  float(*sm_o)[G][256] = reinterpret_cast<float(*)[G][256]>(smem);
  uint16_t* sel = reinterpret_cast<uint16_t*>(smem);

  int lo, hi, chunk_start = 0;
  if constexpr (MODE == kSelect) {
    const int n_cand = batch.lengths[b] - 1;
    if (s == 0) {  // the count pass has read the histogram: leave it zero for the next step
      uint32_t* hist = params.select.histogram + index_row * params.select.histogram_size;
      for (int i = threadIdx.x; i < params.select.histogram_size; i += kThreads) hist[i] = 0;
    }
    chunk_start = s * kSelectChunk;
    lo = 0;
    hi = chunk_start <= n_cand
             ? select_chunk(params.select, index_row, s, n_cand, params.select.budget, sel)
             : 0;
  } else {
    const int n = SPARSE ? sparse.counts[index_row] : batch.lengths[b];
    lo = s * split.split_len;
    hi = min(n, lo + split.split_len);
  }

  float qv[G][8], o[G][8], m[G], l[G];
#pragma unroll
  for (int g = 0; g < G; ++g) {
    const float* qrow = q + (static_cast<size_t>(b) * num_q_heads + qh0 + min(g, heads - 1)) * d;
#pragma unroll
    for (int e = 0; e < 8; ++e) {
      qv[g][e] = g < heads ? qrow[sub * 8 + e] * q_scale : 0.0f;
      o[g][e] = 0.0f;
    }
    m[g] = -INFINITY;
    l[g] = 0.0f;
  }

  const std::byte* k_head = layer.k_pool + static_cast<size_t>(kvh) * layer.kv_head_stride;
  const std::byte* v_head = layer.v_pool + static_cast<size_t>(kvh) * layer.kv_head_stride;
  // CSR: sequence b's pages start at page_indptr[b]. Kept as a 32-bit offset (the base pointer is
  // a kernel parameter): one register in the key loop instead of a 64-bit pointer.
  const int first_page = batch.page_indptr[b];
  const int32_t* idx_row = SPARSE ? sparse.indices + index_row * sparse.index_stride : nullptr;
  const int P = layer.page_size;
  const size_t row_bytes = static_cast<size_t>(d) * 2;

  for (int base = lo + warp * kpw * U; base < hi; base += kWarps * kpw * U) {
    uint4 kr[U], vr[U];
    bool valid[U];
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int i = base + u * kpw + sg;
      valid[u] = i < hi;
      kr[u] = vr[u] = make_uint4(0, 0, 0, 0);  // an unread key must not be NaN: p = 0 multiplies it
      if (valid[u]) {
        const int pos = MODE == kSelect ? chunk_start + sel[i] : MODE == kIndices ? idx_row[i] : i;
        const size_t off =
            static_cast<size_t>(batch.page_indices[first_page + pos / P]) * layer.kv_page_stride +
            static_cast<size_t>(pos % P) * row_bytes + sub * 16;
        kr[u] = load16_stream(k_head + off);
        vr[u] = load16_stream(v_head + off);
      }
    }
    float sc[G][U];
#pragma unroll
    for (int u = 0; u < U; ++u) {
      float kf[8];
      unpack8<Cache>(kr[u], kf);
#pragma unroll
      for (int g = 0; g < G; ++g) {
        float acc = 0.0f;
#pragma unroll
        for (int e = 0; e < 8; ++e) acc = fmaf(qv[g][e], kf[e], acc);
        for (int off = 1; off < lpk; off <<= 1) acc += __shfl_xor_sync(kFull, acc, off);
        sc[g][u] = valid[u] ? acc : -INFINITY;
      }
    }
    float vf[U][8];
#pragma unroll
    for (int u = 0; u < U; ++u) unpack8<Cache>(vr[u], vf[u]);
#pragma unroll
    for (int g = 0; g < G; ++g) {
      float mx = m[g];
#pragma unroll
      for (int u = 0; u < U; ++u) mx = fmaxf(mx, sc[g][u]);
      if (mx == -INFINITY) continue;  // no valid key in this step for this lane's key slot
      const float c = rescale(m[g], mx);
      l[g] *= c;
#pragma unroll
      for (int e = 0; e < 8; ++e) o[g][e] *= c;
#pragma unroll
      for (int u = 0; u < U; ++u) {
        const float p = valid[u] ? exp2f(sc[g][u] - mx) : 0.0f;
        l[g] += p;
#pragma unroll
        for (int e = 0; e < 8; ++e) o[g][e] = fmaf(p, vf[u][e], o[g][e]);
      }
      m[g] = mx;
    }
  }

  // Merge the key slots of the warp (lanes sub, sub + lpk, ... hold the same dimensions).
#pragma unroll
  for (int g = 0; g < G; ++g) {
    for (int off = lpk; off < 32; off <<= 1) {
      const float m2 = __shfl_xor_sync(kFull, m[g], off);
      const float l2 = __shfl_xor_sync(kFull, l[g], off);
      const float mx = fmaxf(m[g], m2);
      const float c1 = rescale(m[g], mx), c2 = rescale(m2, mx);
      l[g] = l[g] * c1 + l2 * c2;
#pragma unroll
      for (int e = 0; e < 8; ++e) {
        const float o2 = __shfl_xor_sync(kFull, o[g][e], off);
        o[g][e] = o[g][e] * c1 + o2 * c2;
      }
      m[g] = mx;
    }
  }
  // Merge the warps through shared memory, then write this split's partial state.
  __shared__ float sm_ml[kWarps][G][2];
  if constexpr (MODE == kSelect) __syncthreads();  // the list is no longer read
  if (sg == 0) {
#pragma unroll
    for (int g = 0; g < G; ++g) {
#pragma unroll
      for (int e = 0; e < 8; ++e) sm_o[warp][g][sub * 8 + e] = o[g][e];
      if (sub == 0) {
        sm_ml[warp][g][0] = m[g];
        sm_ml[warp][g][1] = l[g];
      }
    }
  }
  __syncthreads();
  finish_split<G, 256>(params, sm_o, sm_ml, heads, qh0);
}

template <int G, int MODE>
void launch_dtype(const Params& p, dim3 grid, cudaStream_t stream) {
  constexpr int U = G >= 4 ? 2 : 4;  // registers: more warps per SM for the GQA groups
  if (p.layer.dtype == DType::kF16) {
    attention_kernel<F16, G, MODE, U><<<grid, kThreads, 0, stream>>>(p);
  } else {
    attention_kernel<BF16, G, MODE, U><<<grid, kThreads, 0, stream>>>(p);
  }
}

template <int MODE>
void launch_group(int G, const Params& p, dim3 grid, cudaStream_t stream) {
  switch (G) {
    case 1:
      return launch_dtype<1, MODE>(p, grid, stream);
    case 2:
      return launch_dtype<2, MODE>(p, grid, stream);
    case 4:
      return launch_dtype<4, MODE>(p, grid, stream);
    default:
      return launch_dtype<8, MODE>(p, grid, stream);
  }
}

}  // namespace

namespace {

// How one attention launch is cut: query heads per block (G), blocks per sequence (units) and the
// splits over the keys. Shared by the launchers and attention_needs / select_attention_needs, so
// that a planned workspace always fits the launch.
struct Shape {
  int G;
  int units;
  Split split;
  AttentionNeeds needs(const DeviceLayer& layer, int batch, int num_q_heads) const {
    const size_t rows = static_cast<size_t>(batch) * num_q_heads;
    return {rows * split.splits * (layer.head_dim + 2), static_cast<size_t>(units) * batch};
  }
};

// The tensor-core kernel: as many splits as fill whole waves of resident blocks (every split does
// the same work, so a half-empty last wave costs as much as a full one), of at least one tile per
// warp, a multiple of kTile keys each.
Shape dense_mma_shape(const DeviceLayer& layer, int batch, int keys, int group) {
  const int units = layer.num_kv_heads * ceil_div(group, kMmaHeads);
  const long long per_split = static_cast<long long>(units) * batch;
  const long long resident =
      static_cast<long long>(dense_mma_blocks_per_sm(layer.dtype, layer.head_dim)) * sm_count();
  const int most = std::clamp(ceil_div(keys, kWarps * kTile), 1, kMaxSplits);
  int splits = 1;
  double best = 0;
  for (int s = 1; s <= most; ++s) {
    const long long blocks = per_split * s;
    const double fill = static_cast<double>(blocks) / (ceil_div(blocks, resident) * resident);
    if (fill > best + 1e-9) {
      best = fill;
      splits = s;
    }
    if (fill >= 0.9) break;
  }
  const int split_len = ceil_div(ceil_div(keys, splits), kTile) * kTile;
  return {kMmaHeads, units, Split{ceil_div(keys, split_len), split_len}};
}

// keys: max_count (sparse) or max_length (dense).
Shape attention_shape(const DeviceLayer& layer, int batch, int keys, int num_q_heads, bool sparse,
                      bool shared_rows) {
  const int group = num_q_heads / layer.num_kv_heads;
  if (!sparse && dense_mma_supported(layer)) return dense_mma_shape(layer, batch, keys, group);
  const bool per_head = sparse && !shared_rows;
  int G = 1;
  while (G < group && G < 8) G *= 2;
  if (per_head) G = 1;
  const int units = per_head ? num_q_heads : layer.num_kv_heads * ((group + G - 1) / G);
  // Enough blocks to fill the GPU several times over, splits of at least a few dozen keys.
  const int target_blocks = 8 * sm_count();
  // Keys per split at least: a split's keys are read one dependent round trip per U-deep step, so
  // long splits leave a GQA block latency-bound (dense 32/8 at 8K took 160 µs with 1024-key
  // splits, 96 blocks); the merge of up to kMaxSplits partials is cheap next to that.
  const int min_split = sparse ? 32 : 128;
  const int splits = std::clamp(ceil_div(target_blocks, static_cast<long long>(units) * batch), 1,
                                std::clamp(ceil_div(keys, min_split), 1, kMaxSplits));
  return {G, units, Split{splits, ceil_div(keys, splits)}};
}

Shape select_attention_shape(const DeviceLayer& layer, int max_length, int num_q_heads,
                             bool shared_rows) {
  const int group = num_q_heads / layer.num_kv_heads;
  int G = 1;
  while (G < group && G < 8) G *= 2;
  if (!shared_rows) G = 1;
  const int units = !shared_rows ? num_q_heads : layer.num_kv_heads * ((group + G - 1) / G);
  const int splits = ceil_div(max_length, kSelectChunk);  // one block per chunk of a row
  return {G, units, Split{splits, kSelectChunk}};
}

}  // namespace

AttentionNeeds attention_needs(const DeviceLayer& layer, int batch, int keys, int num_q_heads,
                               bool sparse, bool shared_rows) {
  return attention_shape(layer, batch, keys, num_q_heads, sparse, shared_rows)
      .needs(layer, batch, num_q_heads);
}

AttentionNeeds select_attention_needs(const DeviceLayer& layer, int batch, int max_length,
                                      int num_q_heads, bool shared_rows) {
  return select_attention_shape(layer, max_length, num_q_heads, shared_rows)
      .needs(layer, batch, num_q_heads);
}

void launch_attention(const DeviceLayer& layer, const DeviceBatch& batch, const float* q,
                      int num_q_heads, const SparseArgs* sparse, float scale, float* out,
                      AttentionWorkspace& ws, cudaStream_t stream) {
  const int keys = sparse != nullptr ? sparse->max_count : batch.max_length;
  const Shape shape = attention_shape(layer, batch.batch, keys, num_q_heads, sparse != nullptr,
                                      sparse != nullptr && sparse->shared_rows);
  const AttentionNeeds needs = shape.needs(layer, batch.batch, num_q_heads);
  const size_t rows = static_cast<size_t>(batch.batch) * num_q_heads;
  Params p{layer,
           batch,
           q,
           num_q_heads,
           sparse != nullptr ? *sparse : SparseArgs{},
           scale * kLog2e,
           shape.split,
           nullptr,
           nullptr,
           nullptr,
           out,
           FusedSelect{}};
  p.part_o = ws.partials(needs.partial_floats);
  p.part_ml = p.part_o + rows * shape.split.splits * layer.head_dim;
  p.counters = ws.counters(needs.counters);
  const dim3 grid(shape.split.splits, shape.units, batch.batch);
  if (sparse != nullptr) {
    launch_group<kIndices>(shape.G, p, grid, stream);
  } else if (dense_mma_supported(layer)) {
    launch_dense_mma(p, grid, stream);
  } else {
    launch_group<kDense>(shape.G, p, grid, stream);
  }
}

void launch_select_attention(const DeviceLayer& layer, const DeviceBatch& batch, const float* q,
                             int num_q_heads, bool shared_rows, const FusedSelect& select,
                             float scale, float* out, AttentionWorkspace& ws, cudaStream_t stream) {
  const Shape shape = select_attention_shape(layer, batch.max_length, num_q_heads, shared_rows);
  const AttentionNeeds needs = shape.needs(layer, batch.batch, num_q_heads);
  const size_t rows = static_cast<size_t>(batch.batch) * num_q_heads;
  SparseArgs sparse;
  sparse.shared_rows = shared_rows;
  Params p{layer,       batch,   q,       num_q_heads, sparse, scale * kLog2e,
           shape.split, nullptr, nullptr, nullptr,     out,    select};
  p.part_o = ws.partials(needs.partial_floats);
  p.part_ml = p.part_o + rows * shape.split.splits * layer.head_dim;
  p.counters = ws.counters(needs.counters);
  launch_group<kSelect>(shape.G, p, dim3(shape.split.splits, shape.units, batch.batch), stream);
}

}  // namespace adamas::cuda::detail
