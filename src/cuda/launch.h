// Internal: the kernel launchers, called by kernels.cc after it has validated the arguments.
// Kept free of fmt and the host-side checks so that nvcc compiles only kernels and launches.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "adamas/cuda/kernels.h"

namespace adamas::cuda::detail {

// Top-k rows are cut into chunks of kSelectChunk positions (the count kernel's and the fused
// select-attention kernel's unit); per row the scratch holds v*, the count below v*, then one
// packed (less << 16 | equal) count per chunk.
inline constexpr int kSelectChunk = 8192;
inline constexpr int kSelectMeta = 2;
// Splits one attention launch can merge (the merging block keeps a weight per split in shared
// memory): the fused path has one split per chunk, so rows of at most 8M positions.
inline constexpr int kMaxFusedSplits = 1024;
__host__ __device__ inline size_t select_row_words(int max_length) {
  return kSelectMeta + static_cast<size_t>((max_length + kSelectChunk - 1) / kSelectChunk);
}

// The fused top-k + attention step's inputs (select_sparse_decode_attention).
struct FusedSelect {
  const uint16_t* values = nullptr;  // distances, [rows][value_stride]
  size_t value_stride = 0;
  const uint32_t* scratch = nullptr;  // the count pass's per-row words
  uint32_t* histogram = nullptr;      // zeroed here (the count pass has read it)
  int histogram_size = 0;
  int budget = 0;  // including the current token
  int max_length = 0;
};

// Device properties the launchers size their grids by (cached per process, device 0 .. n).
int sm_count();

// src == nullptr: re-encode the stored keys (encode_stored_keys). scale = 1 / sqrt(head_dim).
void launch_append(const DeviceLayer& layer, const int32_t* slots, int n, const void* k,
                   const void* v, DType src, float scale, cudaStream_t stream);
void launch_encode_queries(const DeviceLayer& layer, const float* q, int rows, int num_q_heads,
                           float scale, QueryCode* out, cudaStream_t stream);
void launch_estimate(const DeviceLayer& layer, const DeviceBatch& batch, const EstimateArgs& args,
                     int histogram_size, cudaStream_t stream);
void launch_select(const TopKArgs& args, uint32_t* scratch, cudaStream_t stream);
// The count pass only (for the fused step).
void launch_select_count(const TopKArgs& args, uint32_t* scratch, cudaStream_t stream);
size_t select_scratch_words(int rows, int max_length);
// Workspace one attention launch needs (AttentionWorkspace: partial floats, arrival counters):
//   attention_needs         launch_attention over `keys` keys per row (sparse: max_count; dense:
//                           max_length) for `batch` sequences;
//   select_attention_needs  launch_select_attention for `batch` sequences of ≤ max_length.
// Both grow with keys / max_length, but not with batch (more sequences, fewer splits each): a
// plan for every batch ≤ B takes the maximum over the batch sizes.
struct AttentionNeeds {
  size_t partial_floats = 0;
  size_t counters = 0;
};
AttentionNeeds attention_needs(const DeviceLayer& layer, int batch, int keys, int num_q_heads,
                               bool sparse, bool shared_rows);
AttentionNeeds select_attention_needs(const DeviceLayer& layer, int batch, int max_length,
                                      int num_q_heads, bool shared_rows);
void launch_attention(const DeviceLayer& layer, const DeviceBatch& batch, const float* q,
                      int num_q_heads, const SparseArgs* sparse, float scale, float* out,
                      AttentionWorkspace& ws, cudaStream_t stream);
void launch_select_attention(const DeviceLayer& layer, const DeviceBatch& batch, const float* q,
                             int num_q_heads, bool shared_rows, const FusedSelect& select,
                             float scale, float* out, AttentionWorkspace& ws, cudaStream_t stream);

}  // namespace adamas::cuda::detail
