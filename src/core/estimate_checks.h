// Internal: argument checks shared by every estimate backend.
#pragma once

#include "adamas/core/estimate.h"

namespace adamas {
void check_estimate_args(const CodeSpec& spec, Distance distance, const QueryCode* q, int nq,
                         const PagedCodes& codes, bool sum_heads);
}  // namespace adamas
