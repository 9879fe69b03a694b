// CUDA runtime helpers shared by the GPU backend: device discovery, error checks that throw
// adamas::Error, and an owning device buffer. Everything here is host code.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "adamas/common/error.h"

namespace adamas::cuda {

// True when a CUDA device can be used (a driver, a device, and a context that starts).
bool available();
// "NVIDIA H200 (sm_90, 132 SMs, 60 MiB L2)" or why none is usable.
std::string device_summary();

// Device-to-device copy bandwidth of the current device in GB/s (bytes read + written per
// second): cudaMemcpyAsync of a 1 GiB buffer into another, 2 warm-ups, then the median of 9
// copies timed with CUDA events. Allocates 2 GiB for the duration of the call.
double copy_bandwidth_gbps();

// Throws adamas::Error "CUDA error in <what>: <name>: <description>" unless status is success.
void check(cudaError_t status, const char* what);
// Checks the launch just made (cudaGetLastError); kernels report bad arguments on the host first.
void check_launch(const char* kernel);

// Owning device allocation of n elements of T (cudaMalloc; never managed memory).
template <class T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t n) { resize(n); }
  ~DeviceBuffer() { release(); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& o) noexcept
      : ptr_(std::exchange(o.ptr_, nullptr)), n_(std::exchange(o.n_, 0)) {}
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    if (this != &o) {
      release();
      ptr_ = std::exchange(o.ptr_, nullptr);
      n_ = std::exchange(o.n_, 0);
    }
    return *this;
  }

  // Reallocates (contents are lost) unless n already fits.
  void resize(size_t n) {
    if (n <= n_ && ptr_ != nullptr) return;
    release();
    if (n == 0) return;
    check(cudaMalloc(reinterpret_cast<void**>(&ptr_), n * sizeof(T)), "cudaMalloc");
    n_ = n;
  }
  void upload(const T* src, size_t n, cudaStream_t stream = nullptr) {
    resize(n);
    check(cudaMemcpyAsync(ptr_, src, n * sizeof(T), cudaMemcpyHostToDevice, stream), "upload");
    check(cudaStreamSynchronize(stream), "upload");
  }
  void upload(const std::vector<T>& src, cudaStream_t stream = nullptr) {
    upload(src.data(), src.size(), stream);
  }
  std::vector<T> download(size_t n, cudaStream_t stream = nullptr) const {
    std::vector<T> out(n);
    if (n == 0) return out;
    if (n > n_) throw Error("download of more elements than the buffer holds");
    check(cudaMemcpyAsync(out.data(), ptr_, n * sizeof(T), cudaMemcpyDeviceToHost, stream),
          "download");
    check(cudaStreamSynchronize(stream), "download");
    return out;
  }
  // Sets every byte to `byte` (tests poison outputs with 0xff).
  void fill_bytes(int byte, cudaStream_t stream = nullptr) {
    if (ptr_ != nullptr) check(cudaMemsetAsync(ptr_, byte, n_ * sizeof(T), stream), "cudaMemset");
  }

  T* data() { return ptr_; }
  const T* data() const { return ptr_; }
  size_t size() const { return n_; }

 private:
  void release() {
    if (ptr_ != nullptr) cudaFree(ptr_);
    ptr_ = nullptr;
    n_ = 0;
  }
  T* ptr_ = nullptr;
  size_t n_ = 0;
};

// Working memory of a decoder: device memory it grows on demand (DeviceBuffer), or a fixed range
// of a caller's workspace (attach: a PyTorch workspace tensor), which it never outgrows: growing
// past that range throws adamas::Error instead of allocating.
template <class T>
class WorkBuffer {
 public:
  T* data() const { return ptr_; }
  size_t size() const { return n_; }
  bool external() const { return external_; }
  // Ensures room for n elements; true when it (re)allocated (contents lost, never on attached
  // memory).
  bool grow(size_t n, const char* what) {
    if (n <= n_ && (ptr_ != nullptr || n == 0)) return false;
    if (external_) {
      throw Error("the caller's workspace is too small for " + std::string(what) + ": " +
                  std::to_string(n * sizeof(T)) + " bytes needed, " +
                  std::to_string(n_ * sizeof(T)) +
                  " planned (plan the workspace for the larger "
                  "batch, length or budget)");
    }
    owned_.resize(n);
    ptr_ = owned_.data();
    n_ = n;
    return true;
  }
  void attach(T* ptr, size_t n) {
    owned_ = DeviceBuffer<T>();
    ptr_ = ptr;
    n_ = n;
    external_ = true;
  }

 private:
  DeviceBuffer<T> owned_;
  T* ptr_ = nullptr;
  size_t n_ = 0;
  bool external_ = false;
};

}  // namespace adamas::cuda
