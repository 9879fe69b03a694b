#include "bandwidth.h"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <memory>

namespace adamas::cli {

double measure_copy_bandwidth(int threads) {
  const size_t bytes = size_t{512} << 20;
  std::unique_ptr<char[]> src(new char[bytes]), dst(new char[bytes]);
#pragma omp parallel for num_threads(threads)
  for (size_t i = 0; i < bytes; i += 4096) {  // fault the pages in
    src[i] = static_cast<char>(i);
    dst[i] = 0;
  }
  double best = 1e30;
  for (int rep = 0; rep < 5; ++rep) {
    const auto t0 = std::chrono::steady_clock::now();
#pragma omp parallel num_threads(threads)
    {
      const size_t n = static_cast<size_t>(omp_get_num_threads());
      const size_t part = (bytes / n + 63) / 64 * 64;
      const size_t begin = std::min(bytes, part * omp_get_thread_num());
      const size_t end = std::min(bytes, begin + part);
      std::memcpy(dst.get() + begin, src.get() + begin, end - begin);
    }
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return 2.0 * bytes / best / 1e9;
}

}  // namespace adamas::cli
