// Internal: launchers of the forward-pass kernels (model_kernels.cu, prefill_attention.cu),
// called by model_kernels.cc after it has checked the arguments. Free of fmt so that nvcc
// compiles only kernels and launches.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "adamas/cuda/model_kernels.h"

namespace adamas::cuda::detail {

void launch_embed(const void* table, DType type, int vocab, int hidden, const int32_t* tokens,
                  int n, float* x, cudaStream_t stream);
void launch_rms_norm(const float* x, const float* weight, int n, int dim, float eps, void* out,
                     DType out_type, cudaStream_t stream);
void launch_qkv_rope(const RopeArgs& args, cudaStream_t stream);
void launch_swiglu(const float* gate_up, const float* bias, int n, int inter, void* out,
                   DType out_type, cudaStream_t stream);
void launch_convert(const float* x, const float* bias, int64_t count, int dim, void* out,
                    DType out_type, cudaStream_t stream);
void launch_cast(const void* src, DType from, int64_t count, void* dst, DType to,
                 cudaStream_t stream);
void launch_add_bias(float* x, const float* bias, int64_t count, int dim, cudaStream_t stream);
// scale: softmax scale of q·k.
void launch_prefill_attention(const DeviceLayer& layer, const DeviceBatch& batch, const float* q,
                              int n, int num_heads, float scale, float* out, cudaStream_t stream);

}  // namespace adamas::cuda::detail
