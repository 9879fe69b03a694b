// Internal: argument checks shared by every attention backend.
#pragma once

#include "adamas/core/attention.h"

namespace adamas {
void check_attention_args(int nq, const PagedKV& kv);
void check_indices(const PagedKV& kv, const int32_t* indices, int count);
}  // namespace adamas
