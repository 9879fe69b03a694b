// Internal: OpenMP parallel loop that carries the first exception out of the parallel region
// (an exception escaping an OpenMP region would terminate the program).
#pragma once

#include <omp.h>

#include <exception>
#include <mutex>

namespace adamas {

// threads ≤ 0: OpenMP's default team size.
template <class F>
void parallel_for(int n, int threads, F&& f) {
  if (threads <= 0) threads = omp_get_max_threads();
  std::exception_ptr error;
  std::mutex mu;
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads) if (threads != 1 && n > 1)
  for (int i = 0; i < n; ++i) {
    try {
      f(i);
    } catch (...) {
      std::lock_guard<std::mutex> lock(mu);
      if (!error) error = std::current_exception();
    }
  }
  if (error) std::rethrow_exception(error);
}

}  // namespace adamas
