// Device helpers of the GPU benchmark (bench/cuda_decode_bench.cc): random fills that need no
// host round trip, and a read-only pass that measures the bandwidth a kernel that only reads
// (decode attention, the estimate) can reach.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "adamas/common/dtype.h"

namespace adamas::bench {

// Fills dst[0 .. n) of type `type` (f32, f16 or bf16) with approximately normal values of mean 0
// and the given standard deviation (Box–Muller on a 64-bit hash of (seed, index)): the same
// (seed, n) gives the same values on every run. Asynchronous on `stream`.
void fill_normal(void* dst, DType type, size_t n, float stddev, uint64_t seed, cudaStream_t stream);

// Reads `bytes` bytes of src (16-byte loads, bytes a multiple of 16) and writes one word to *sink
// only when the data holds an impossible pattern, so the reads cannot be optimized away.
// Asynchronous on `stream`; time it with events.
void read_only_pass(const void* src, size_t bytes, uint32_t* sink, cudaStream_t stream);

}  // namespace adamas::bench
