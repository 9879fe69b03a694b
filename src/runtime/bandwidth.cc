// The host's copy and read bandwidth (adamas/runtime/bandwidth.h): the CPU side of
// model::copy_bandwidth_gbps and the ceilings `adamas bench` prints.
#include "adamas/runtime/bandwidth.h"

#include <cblas.h>
#include <omp.h>
#include <sys/mman.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <vector>

extern "C" void openblas_set_num_threads(int);

namespace adamas::model {
namespace {

constexpr size_t kBytes = size_t{512} << 20;

// An anonymous mapping on transparent huge pages, like the KV cache's pools.
struct Buffer {
  Buffer()
      : p(static_cast<char*>(
            mmap(nullptr, kBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0))) {
    if (p == MAP_FAILED) p = nullptr;
    if (p != nullptr) madvise(p, kBytes, MADV_HUGEPAGE);
  }
  ~Buffer() {
    if (p != nullptr) munmap(p, kBytes);
  }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  char* p;
};

// Best of `reps` timed passes after one untimed pass (the first pass in a process, on a 16-core
// VM, read at half the rate of later ones: threads and pages still settling).
template <class F>
double best_of(int reps, F&& f) {
  f();
  double best = 1e30;
  for (int rep = 0; rep < reps; ++rep) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    best = std::min(best,
                    std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

// XOR of all words, eight independent lanes per 64-byte line; GCC compiles one clone per ISA and
// picks at run time, so the loop is as wide as the CPU allows.
__attribute__((target_clones("avx512f", "avx2", "default"))) uint64_t xor_words(const uint64_t* p,
                                                                                size_t n) {
  uint64_t acc[8] = {};
  for (size_t i = 0; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) acc[j] ^= p[i + j];
  uint64_t x = 0;
  for (uint64_t a : acc) x ^= a;
  return x;
}

// Splits [0, kBytes) into one 64-byte aligned part per thread.
template <class F>
void split(int threads, F&& f) {
  if (threads <= 0) threads = omp_get_max_threads();
#pragma omp parallel num_threads(threads)
  {
    const size_t n = static_cast<size_t>(omp_get_num_threads());
    const size_t part = (kBytes / n + 63) / 64 * 64;
    const size_t begin = std::min(kBytes, part * omp_get_thread_num());
    f(begin, std::min(kBytes, begin + part));
  }
}

}  // namespace

double host_copy_bandwidth_gbps(int threads) {
  Buffer src, dst;
  if (src.p == nullptr || dst.p == nullptr) return 0;
  split(threads, [&](size_t b, size_t e) {  // fault the pages in on the threads that use them
    std::memset(src.p + b, 1, e - b);
    std::memset(dst.p + b, 0, e - b);
  });
  const double t = best_of(7, [&] {
    split(threads, [&](size_t b, size_t e) { std::memcpy(dst.p + b, src.p + b, e - b); });
  });
  return 2.0 * kBytes / t / 1e9;
}

double host_read_bandwidth_gbps(int threads) {
  Buffer buf;
  if (buf.p == nullptr) return 0;
  split(threads, [&](size_t b, size_t e) { std::memset(buf.p + b, 1, e - b); });
  uint64_t sink = 0;
  const double t = best_of(7, [&] {
    split(threads, [&](size_t b, size_t e) {
      const uint64_t x = xor_words(reinterpret_cast<const uint64_t*>(buf.p + b), (e - b) / 8);
#pragma omp atomic
      sink ^= x;
    });
  });
  if (sink == 42) std::fputs("", stderr);  // keeps the reads
  return kBytes / t / 1e9;
}

double host_sgemm_gflops(int threads) {
  if (threads <= 0) threads = omp_get_max_threads();
  constexpr int M = 256, N = 2048, K = 2048;  // one prefill chunk through a hidden × hidden layer
  openblas_set_num_threads(1);  // as the runtime calls it: one BLAS thread inside each of ours
  std::vector<std::vector<float>> a(threads), b(threads), c(threads);
  const double t = [&] {
    double best = 1e30;
    for (int rep = 0; rep < 4; ++rep) {  // rep 0 allocates, touches and warms up
      const auto t0 = std::chrono::steady_clock::now();
#pragma omp parallel num_threads(threads)
      {
        const int i = omp_get_thread_num();
        if (a[i].empty()) {
          a[i].assign(size_t(M) * K, 0.5f);
          b[i].assign(size_t(N) * K, 0.25f);
          c[i].assign(size_t(M) * N, 0.f);
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.f, a[i].data(), K,
                    b[i].data(), K, 0.f, c[i].data(), N);
      }
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (rep > 0) best = std::min(best, s);
    }
    return best;
  }();
  return 2.0 * M * N * K * threads / t / 1e9;
}

}  // namespace adamas::model
