// What a paged KV cache holds and how large it is, for every backend (CPU: paged_kv_cache.h,
// GPU: cuda/device_cache.h). Validation lives in src/cache/cache_config.cc.
#pragma once

#include <cstdint>

#include "adamas/common/dtype.h"
#include "adamas/core/codes.h"

namespace adamas {

struct CacheConfig {
  int num_layers = 1;
  int num_kv_heads = 1;
  int head_dim = 128;
  int page_size = 64;  // tokens per page
  int num_pages = 0;   // capacity of the pool, shared by all sequences
  DType dtype = DType::kF16;
  bool store_codes = true;        // Adamas key codes
  CodeSpec codes;                 // head_dim is taken from above
  bool store_page_minmax = true;  // Quest metadata

  void validate() const;  // throws adamas::Error naming the bad field
  // Pages needed to hold `tokens` tokens of one sequence.
  int pages_for(int64_t tokens) const {
    return static_cast<int>((tokens + page_size - 1) / page_size);
  }
};

using SeqId = int32_t;

}  // namespace adamas
