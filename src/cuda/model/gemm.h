// Matrix products of the forward pass through cuBLAS (the CUDA toolkit's), on one stream, with a
// workspace set once so that calls can be captured in CUDA graphs.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include "adamas/common/dtype.h"
#include "adamas/cuda/runtime.h"
#include "adamas/model/weights.h"

namespace adamas::cuda {

// A linear layer's weight, row-major [out][in] as HF stores it: the host runtime's Matrix, here
// with its data in device memory.
using DeviceMatrix = model::Matrix;

class Gemm {
 public:
  explicit Gemm(cudaStream_t stream);
  ~Gemm();
  Gemm(const Gemm&) = delete;
  Gemm& operator=(const Gemm&) = delete;

  // y[n][W.rows] = x[n][W.cols] · Wᵀ + beta · y; x in W's dtype, y fp32, accumulation fp32
  // (no TF32: an f32 model multiplies in full fp32). beta = 1 adds into y (the residual).
  void linear(const DeviceMatrix& W, const void* x, int n, float* y, float beta = 0.0f);

 private:
  cublasHandle_t handle_ = nullptr;
  DeviceBuffer<std::byte> workspace_;
};

}  // namespace adamas::cuda
