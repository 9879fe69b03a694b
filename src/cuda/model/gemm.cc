#include "cuda/model/gemm.h"

#include <fmt/format.h>

#include "common/check.h"

namespace adamas::cuda {
namespace {

void check_cublas(cublasStatus_t status, const char* what) {
  if (status == CUBLAS_STATUS_SUCCESS) return;
  throw Error(fmt::format("cuBLAS error in {}: {} ({})", what, cublasGetStatusName(status),
                          cublasGetStatusString(status)));
}

cudaDataType_t cuda_type(DType t) {
  switch (t) {
    case DType::kBF16:
      return CUDA_R_16BF;
    case DType::kF16:
      return CUDA_R_16F;
    default:
      return CUDA_R_32F;
  }
}

}  // namespace

Gemm::Gemm(cudaStream_t stream) {
  check_cublas(cublasCreate(&handle_), "cublasCreate");
  check_cublas(cublasSetStream(handle_, stream), "cublasSetStream");
  // A fixed workspace: cuBLAS then allocates nothing per call (graph capture needs that).
  workspace_.resize(32u << 20);
  check_cublas(cublasSetWorkspace(handle_, workspace_.data(), workspace_.size()),
               "cublasSetWorkspace");
  check_cublas(cublasSetMathMode(handle_, CUBLAS_DEFAULT_MATH), "cublasSetMathMode");
}

Gemm::~Gemm() {
  if (handle_ != nullptr) cublasDestroy(handle_);
}

void Gemm::linear(const DeviceMatrix& W, const void* x, int n, float* y, float beta) {
  ADAMAS_CHECK(W.data && x && y && n >= 0, "linear: null operand or n = {}", n);
  if (n == 0) return;
  const float alpha = 1.0f;
  // Column-major view: W is [cols][rows] (ld cols), so Wᵀ is op(A) = T; x is [cols][n]; y is
  // [rows][n] (ld rows): y = Wᵀ · x.
  const cudaDataType_t t = cuda_type(W.dtype);
  check_cublas(cublasGemmEx(handle_, CUBLAS_OP_T, CUBLAS_OP_N, W.rows, n, W.cols, &alpha, W.data, t,
                            W.cols, x, t, W.cols, &beta, y, CUDA_R_32F, W.rows, CUBLAS_COMPUTE_32F,
                            CUBLAS_GEMM_DEFAULT),
               "cublasGemmEx");
}

}  // namespace adamas::cuda
