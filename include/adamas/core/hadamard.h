// Kernel contract: orthonormal fast Walsh–Hadamard transform (docs/method.md step 1).
//
//   x' = x · H_d / sqrt(d),  H_d the Sylvester Hadamard matrix (H_2n = [[H_n, H_n], [H_n, -H_n]]),
//
// so that (q·H)·(k·H) = q·k. In place, O(d log d) butterflies per row, never a matrix product.
//   data: `rows` rows of `d` floats each, row i at data + i * row_stride (row_stride >= d).
//   d:    power of two in [16, 256]; anything else throws adamas::Error naming the value.
#pragma once

#include <cstddef>

namespace adamas {

inline constexpr int kMinHeadDim = 16;
inline constexpr int kMaxHeadDim = 256;

// Throws adamas::Error unless d is a power of two in [kMinHeadDim, kMaxHeadDim].
void check_head_dim(int d);

// Fast path (SIMD, run-time dispatch).
void hadamard_transform(float* data, size_t rows, int d, size_t row_stride);
inline void hadamard_transform(float* data, size_t rows, int d) {
  hadamard_transform(data, rows, d, static_cast<size_t>(d));
}

namespace ref {
// Reference: the explicit matrix product with H[i][j] = (-1)^popcount(i & j) / sqrt(d). O(d^2).
void hadamard_transform(float* data, size_t rows, int d, size_t row_stride);
}  // namespace ref

}  // namespace adamas
