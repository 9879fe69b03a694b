// Top-k per row: the k smallest distances, positions in ascending order, ties to the lower
// position (the CPU select_smallest exactly), in linear time without sorting.
//
// Distances are small integers (≤ max_distance), and estimate already built each row's
// histogram, so the k-th value v* and the count of values below it come from one prefix sum.
// Rows are cut into chunks of kChunk positions (each thread loads 32 consecutive values with
// 16-byte loads), each its own block, so one row spreads over the
// GPU whatever the batch:
//   count kernel: per chunk, how many values are < v* and == v*;
//   write kernel: per chunk, the counts of the chunks before it, then one in-order block scan
//                 places every selected position at its final index. Chunks after the last
//                 selected position read nothing.
#include <cuda_runtime.h>

#include <cub/block/block_reduce.cuh>
#include <cub/block/block_scan.cuh>

#include "cuda/device_common.cuh"
#include "cuda/launch.h"

namespace adamas::cuda::detail {
namespace {

constexpr int kThreads = 256;
constexpr int kPerThread = 32;
constexpr int kChunk = kSelectChunk;  // 8192: per-chunk counts fit 16 bits
static_assert(kChunk == kThreads * kPerThread);
constexpr int kMeta = kSelectMeta;  // per row: v*, count below v*

struct RowInfo {
  int n;  // candidates
  int k;  // to select, ≤ n
  int seq;
};

__device__ __forceinline__ RowInfo row_info(const TopKArgs& a, int row) {
  RowInfo r;
  r.seq = row / a.rows_per_seq;
  r.n = a.lengths[r.seq] - (a.add_current ? 1 : 0);
  const int k = a.budget - (a.add_current ? 1 : 0);
  r.k = k < r.n ? k : r.n;
  return r;
}

__host__ __device__ size_t row_words(int max_length) { return select_row_words(max_length); }

// v* = the smallest value whose cumulative count reaches k; below = count of values < v*.
// k == n: every value is taken (v* past the largest); k == 0: none.
__device__ void find_threshold(const uint32_t* hist, int hist_size, int k, int n, int* v_star,
                               int* below) {
  using Scan = cub::BlockScan<int, kThreads>;
  __shared__ typename Scan::TempStorage scan;
  __shared__ int shared_v, shared_below;
  if (k >= n || k <= 0) {
    *v_star = k <= 0 ? 0 : hist_size;
    *below = k <= 0 ? 0 : n;
    return;  // uniform over the block
  }
  const int per = (hist_size + kThreads - 1) / kThreads;
  const int lo = min(hist_size, threadIdx.x * per), hi = min(hist_size, lo + per);
  int local = 0;
  for (int v = lo; v < hi; ++v) local += static_cast<int>(hist[v]);
  int before;
  Scan(scan).ExclusiveSum(local, before);
  if (before < k && k <= before + local) {
    int cum = before;
    for (int v = lo; v < hi; ++v) {
      const int c = static_cast<int>(hist[v]);
      if (cum + c >= k) {
        shared_v = v;
        shared_below = cum;
        break;
      }
      cum += c;
    }
  }
  __syncthreads();
  *v_star = shared_v;
  *below = shared_below;
}

// The kPerThread consecutive values of one thread, from position `first` of the row, two per
// 32-bit word (registers: the write kernel keeps them across a block scan): 16-byte loads when
// the row is aligned and the run is whole, else element by element; past n: 0xffff.
struct Run {
  uint32_t w[kPerThread / 2];
  __device__ __forceinline__ int operator[](int i) const {
    return (w[i >> 1] >> (16 * (i & 1))) & 0xffff;
  }
};
__device__ __forceinline__ void load_run(const uint16_t* row, int first, int n, Run& v) {
  const uint16_t* p = row + first;
  if (first + kPerThread <= n && (reinterpret_cast<uintptr_t>(p) & 15) == 0) {
#pragma unroll
    for (int i = 0; i < kPerThread / 8; ++i) {
      const uint4 x = __ldcs(reinterpret_cast<const uint4*>(p) + i);
      v.w[4 * i] = x.x;
      v.w[4 * i + 1] = x.y;
      v.w[4 * i + 2] = x.z;
      v.w[4 * i + 3] = x.w;
    }
  } else {
#pragma unroll
    for (int i = 0; i < kPerThread / 2; ++i) {
      const uint32_t lo = first + 2 * i < n ? p[2 * i] : 0xffff;
      const uint32_t hi = first + 2 * i + 1 < n ? p[2 * i + 1] : 0xffff;
      v.w[i] = lo | (hi << 16);
    }
  }
}

__global__ void __launch_bounds__(kThreads) count_kernel(TopKArgs a, uint32_t* scratch) {
  const int row = blockIdx.y, chunk = blockIdx.x;
  const RowInfo info = row_info(a, row);
  const int start = chunk * kChunk;
  if (start >= info.n && chunk > 0) return;
  // The values first: their loads are in flight while the threshold is found.
  const uint16_t* values = a.values + static_cast<size_t>(row) * a.value_stride;
  Run v;
  load_run(values, start + threadIdx.x * kPerThread, info.n, v);
  int v_star, below;
  find_threshold(a.histogram + static_cast<size_t>(row) * a.histogram_size, a.histogram_size,
                 info.k, info.n, &v_star, &below);
  uint32_t* meta = scratch + static_cast<size_t>(row) * row_words(a.max_length);
  if (chunk == 0 && threadIdx.x == 0) {
    meta[0] = static_cast<uint32_t>(v_star);
    meta[1] = static_cast<uint32_t>(below);
  }
  int less = 0, equal = 0;
#pragma unroll
  for (int i = 0; i < kPerThread; ++i) {
    const bool in = start + threadIdx.x * kPerThread + i < info.n;
    less += in && v[i] < v_star;
    equal += in && v[i] == v_star;
  }
  using Reduce = cub::BlockReduce<int, kThreads>;
  __shared__ typename Reduce::TempStorage reduce;
  const int packed = Reduce(reduce).Sum((less << 16) | equal);
  if (threadIdx.x == 0) meta[kMeta + chunk] = static_cast<uint32_t>(packed);
}

__global__ void __launch_bounds__(kThreads, 3) write_kernel(TopKArgs a, const uint32_t* scratch) {
  const int row = blockIdx.y, chunk = blockIdx.x;
  const RowInfo info = row_info(a, row);
  const int start = chunk * kChunk;
  int32_t* out = a.out + static_cast<size_t>(row) * a.out_stride;
  if (chunk == 0) {  // row bookkeeping: the current token, the count, a zeroed histogram
    uint32_t* hist = a.histogram + static_cast<size_t>(row) * a.histogram_size;
    for (int i = threadIdx.x; i < a.histogram_size; i += kThreads) hist[i] = 0;
    if (threadIdx.x == 0) {
      if (a.add_current) out[info.k] = info.n;  // position length − 1
      a.counts[row] = info.k + (a.add_current ? 1 : 0);
    }
  }
  if (start >= info.n || info.k == 0) return;
  // Issue every load first (this chunk's values, the row's threshold, the earlier chunks'
  // counts), so the block waits for memory once.
  const uint16_t* values = a.values + static_cast<size_t>(row) * a.value_stride;
  const int mine = threadIdx.x * kPerThread;
  Run vals;
  load_run(values, start + mine, info.n, vals);
  const uint32_t* meta = scratch + static_cast<size_t>(row) * row_words(a.max_length);
  const int v_star = static_cast<int>(meta[0]), below = static_cast<int>(meta[1]);
  const int need = info.k - below;  // positions equal to v* to take, lowest first
  unsigned long long prev = 0;      // counts of the chunks before this one: less << 32 | equal
  for (int c = threadIdx.x; c < chunk; c += kThreads) {
    const uint32_t packed = meta[kMeta + c];
    prev += (static_cast<unsigned long long>(packed >> 16) << 32) | (packed & 0xffff);
  }
  using Reduce = cub::BlockReduce<unsigned long long, kThreads>;
  __shared__ typename Reduce::TempStorage reduce;
  __shared__ int less0, equal0;
  prev = Reduce(reduce).Sum(prev);
  if (threadIdx.x == 0) {
    less0 = static_cast<int>(prev >> 32);
    equal0 = static_cast<int>(prev & 0xffffffffu);
  }
  __syncthreads();
  if (less0 >= below && equal0 >= need) return;  // everything selected lies before this chunk

  // Each thread holds kPerThread consecutive positions; one block scan orders them.
  int less = 0, equal = 0;
#pragma unroll
  for (int i = 0; i < kPerThread; ++i) {
    if (start + mine + i < info.n) {
      less += vals[i] < v_star;
      equal += vals[i] == v_star;
    }
  }
  using Scan = cub::BlockScan<int, kThreads>;
  __shared__ typename Scan::TempStorage scan;
  int packed_before;
  Scan(scan).ExclusiveSum((less << 16) | equal, packed_before);
  int less_before = less0 + (packed_before >> 16);
  int equal_before = equal0 + (packed_before & 0xffff);
#pragma unroll
  for (int i = 0; i < kPerThread; ++i) {
    const int pos = start + mine + i;
    if (pos >= info.n) break;
    const int v = vals[i];
    if (v < v_star) {
      out[less_before + min(equal_before, need)] = pos;
      ++less_before;
    } else if (v == v_star) {
      if (equal_before < need) out[less_before + equal_before] = pos;
      ++equal_before;
    }
  }
}

}  // namespace

size_t select_scratch_words(int rows, int max_length) {
  return static_cast<size_t>(rows) * row_words(max_length);
}

void launch_select(const TopKArgs& args, uint32_t* scratch, cudaStream_t stream) {
  if (args.rows == 0) return;
  const dim3 grid(std::max(1, ceil_div(args.max_length, kChunk)), args.rows);
  count_kernel<<<grid, kThreads, 0, stream>>>(args, scratch);
  write_kernel<<<grid, kThreads, 0, stream>>>(args, scratch);
}

void launch_select_count(const TopKArgs& args, uint32_t* scratch, cudaStream_t stream) {
  if (args.rows == 0) return;
  const dim3 grid(std::max(1, ceil_div(args.max_length, kChunk)), args.rows);
  count_kernel<<<grid, kThreads, 0, stream>>>(args, scratch);
}

}  // namespace adamas::cuda::detail
