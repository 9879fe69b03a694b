// Internal: the kernel launchers, called by kernels.cc after it has validated the arguments.
// Kept free of fmt and the host-side checks so that nvcc compiles only kernels and launches.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "adamas/cuda/kernels.h"

namespace adamas::cuda::detail {

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
size_t select_scratch_words(int rows, int max_length);
void launch_attention(const DeviceLayer& layer, const DeviceBatch& batch, const float* q,
                      int num_q_heads, const SparseArgs* sparse, float scale, float* out,
                      AttentionWorkspace& ws, cudaStream_t stream);

}  // namespace adamas::cuda::detail
