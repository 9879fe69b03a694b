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

// The same with the counting pass already done: hist[b] = #{j < n : values[j] >> shift = b} for
// b < hist_size, every value >> shift < hist_size (e.g. the fused histogram of
// estimate_distances(), whose shift is histogram_shift(distance)). With shift > 0 the k-th value
// is found among the members of its bin (one more pass over the row).
int select_smallest(const uint16_t* values, int n, int k, const uint32_t* hist, int hist_size,
                    int32_t* out, int shift = 0);

// k largest of float values (exact scores, Quest page scores), via nth_element on (value, pos).
// NaN is treated as −inf.
int select_largest(const float* values, int n, int k, int32_t* out);

namespace ref {
// Reference: stable sort of all positions.
int select_smallest(const uint16_t* values, int n, int k, int32_t* out);
int select_largest(const float* values, int n, int k, int32_t* out);
}  // namespace ref

}  // namespace adamas
