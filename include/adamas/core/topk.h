// Kernel contract: top-k selection (docs/method.md step 5).
//
// Writes the positions of the k best of n values to out[0 .. min(k, n)) in ascending position
// order and returns that count. Ties go to the lower position, so the result is unique.
// Linear time, no full sort. k ≥ n returns 0 .. n−1. k < 0 throws adamas::Error.
#pragma once

#include <cstdint>

namespace adamas {

// k smallest of uint16 values (distances), via a counting/radix select: two or three passes.
int select_smallest(const uint16_t* values, int n, int k, int32_t* out);

// The same with the counting pass already done: hist[v] = #{j < n : values[j] = v} for
// v < hist_size, every value < hist_size (e.g. the fused histogram of estimate_distances()).
int select_smallest(const uint16_t* values, int n, int k, const uint32_t* hist, int hist_size,
                    int32_t* out);

// k largest of float values (exact scores, Quest page scores), via nth_element on (value, pos).
// NaN is treated as −inf.
int select_largest(const float* values, int n, int k, int32_t* out);

namespace ref {
// Reference: stable sort of all positions.
int select_smallest(const uint16_t* values, int n, int k, int32_t* out);
int select_largest(const float* values, int n, int k, int32_t* out);
}  // namespace ref

}  // namespace adamas
