// Which SIMD instruction set the CPU kernels run on (chosen at run time).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace adamas {

// Name of the best target this CPU supports among those compiled in (e.g. "AVX3_DL").
std::string simd_target();
// All compiled targets this CPU supports, best first.
std::vector<std::string> available_simd_targets();
// Restricts dispatch to one target by name (benchmarks comparing targets; tests). "" = all.
// Throws adamas::Error for a name that is not available.
void force_simd_target(std::string_view name);

}  // namespace adamas
