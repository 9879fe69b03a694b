#pragma once

namespace adamas::cli {
// Device-style copy bandwidth of this machine: memcpy of a 512 MiB buffer split over `threads`,
// counting bytes read plus bytes written, best of 5. GB/s (1e9 bytes).
double measure_copy_bandwidth(int threads);
// Read-only bandwidth: a sum over a 512 MiB buffer split over `threads` (the ceiling of a kernel
// that only reads, like decode attention), best of 5. GB/s.
double measure_read_bandwidth(int threads);
}  // namespace adamas::cli
