// Kernel contract: a few rows times a half-precision matrix (the decode step's projections).
//   y[i][r] = Σ_j x[i][j] · W[r][j]     for i < n, r in [row_begin, row_end)
// x: [n][cols] fp32 (row stride cols); W: [rows][cols] of `wtype` (f32, f16 or bf16), row-major;
// y: row i at y + i * y_stride (y_stride ≥ row_end). Weights are read once, converted in
// registers (no conversion pass, no fp32 copy), accumulated in fp32. n ≤ 16 (decode batches;
// larger products go to a GEMM). Callers split the rows over threads.
#pragma once

#include <cstddef>

#include "adamas/common/dtype.h"

namespace adamas {

inline constexpr int kMatvecMaxRows = 16;

// Throws adamas::Error naming the bad argument (n, cols, the row range, null pointers).
void matvec(const float* x, int n, int cols, const void* W, DType wtype, int row_begin, int row_end,
            float* y, size_t y_stride);

namespace ref {
void matvec(const float* x, int n, int cols, const void* W, DType wtype, int row_begin, int row_end,
            float* y, size_t y_stride);
}  // namespace ref

}  // namespace adamas
