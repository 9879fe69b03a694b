// Internal: argument checks shared by the top-k backends.
#pragma once

#include <cstdint>

namespace adamas {
// Throws on k < 0 or n < 0. When k ≥ n writes 0 .. n−1 to out and returns n; otherwise −1.
int check_topk_args(int n, int k, int32_t* out);
}  // namespace adamas
