#include "adamas/cuda/runtime.h"

#include <fmt/format.h>

#include <algorithm>
#include <mutex>
#include <vector>

#include "cuda/launch.h"

namespace adamas::cuda {

void check(cudaError_t status, const char* what) {
  if (status == cudaSuccess) return;
  throw Error(fmt::format("CUDA error in {}: {}: {}", what, cudaGetErrorName(status),
                          cudaGetErrorString(status)));
}

void check_launch(const char* kernel) { check(cudaGetLastError(), kernel); }

bool available() {
  static const bool ok = [] {
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
      cudaGetLastError();  // clear the sticky "no device" error
      return false;
    }
    return cudaFree(nullptr) == cudaSuccess;  // creates the context
  }();
  return ok;
}

std::string device_summary() {
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess) {
    cudaGetLastError();
    return fmt::format("no usable CUDA device ({})", cudaGetErrorString(status));
  }
  if (count == 0) return "no CUDA device";
  int device = 0;
  check(cudaGetDevice(&device), "cudaGetDevice");
  cudaDeviceProp p{};
  check(cudaGetDeviceProperties(&p, device), "cudaGetDeviceProperties");
  return fmt::format("{} (sm_{}{}, {} SMs, {} MiB L2, {} GiB)", p.name, p.major, p.minor,
                     p.multiProcessorCount, p.l2CacheSize >> 20, p.totalGlobalMem >> 30);
}

double copy_bandwidth_gbps() {
  constexpr size_t kBytes = size_t{1} << 30;
  DeviceBuffer<char> src(kBytes), dst(kBytes);
  src.fill_bytes(1);
  dst.fill_bytes(0);
  cudaEvent_t start = nullptr, stop = nullptr;
  check(cudaEventCreate(&start), "cudaEventCreate");
  check(cudaEventCreate(&stop), "cudaEventCreate");
  std::vector<float> ms;
  try {
    for (int rep = 0; rep < 2 + 9; ++rep) {  // 2 warm-ups, then 9 timed
      check(cudaEventRecord(start), "cudaEventRecord");
      check(cudaMemcpyAsync(dst.data(), src.data(), kBytes, cudaMemcpyDeviceToDevice),
            "cudaMemcpyAsync");
      check(cudaEventRecord(stop), "cudaEventRecord");
      check(cudaEventSynchronize(stop), "cudaEventSynchronize");
      float t = 0;
      check(cudaEventElapsedTime(&t, start, stop), "cudaEventElapsedTime");
      if (rep >= 2) ms.push_back(t);
    }
  } catch (...) {
    cudaEventDestroy(start);
    cudaEventDestroy(stop);
    throw;
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  std::nth_element(ms.begin(), ms.begin() + ms.size() / 2, ms.end());
  const double seconds = ms[ms.size() / 2] * 1e-3;
  return 2.0 * kBytes / seconds / 1e9;
}

namespace detail {

int sm_count() {
  static int count = [] {
    int device = 0, n = 0;
    check(cudaGetDevice(&device), "cudaGetDevice");
    check(cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, device),
          "cudaDeviceGetAttribute");
    return n;
  }();
  return count;
}

}  // namespace detail
}  // namespace adamas::cuda
