// Memory bandwidth and GEMM rate of the host, measured now (src/runtime/bandwidth.cc): the ceilings
// that benchmarks compare decode steps against. model::copy_bandwidth_gbps(Device) (llama.h) is the
// per-device entry point; these are its CPU side, with the thread count explicit.
#pragma once

namespace adamas::model {

// memcpy of a 512 MiB buffer split over `threads` (≤ 0: OpenMP's default), counting bytes read
// plus bytes written, best of 7 after a warm-up pass. GB/s (1e9 bytes); 0 when the buffers cannot
// be mapped.
double host_copy_bandwidth_gbps(int threads);
// Read-only: a sum over a 512 MiB buffer split over `threads` (the ceiling of a kernel that only
// reads, like decode attention), best of 7 after a warm-up pass. GB/s.
double host_read_bandwidth_gbps(int threads);
// The host's fp32 GEMM rate as the CPU prefill uses it: every thread runs single-threaded OpenBLAS
// sgemm on its own block (a 256-token chunk × 2048 × 2048), best of 3. GFLOP/s (1e9).
double host_sgemm_gflops(int threads);

}  // namespace adamas::model
