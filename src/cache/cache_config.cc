#include "adamas/cache/cache_config.h"

#include "adamas/core/hadamard.h"
#include "common/check.h"

namespace adamas {

void CacheConfig::validate() const {
  ADAMAS_CHECK(num_layers >= 1, "num_layers must be ≥ 1, got {}", num_layers);
  ADAMAS_CHECK(num_kv_heads >= 1, "num_kv_heads must be ≥ 1, got {}", num_kv_heads);
  check_head_dim(head_dim);
  ADAMAS_CHECK(page_size >= 1 && page_size <= 4096, "page_size must be in [1, 4096], got {}",
               page_size);
  ADAMAS_CHECK(num_pages >= 1, "num_pages must be ≥ 1, got {}", num_pages);
  if (store_codes) {
    CodeSpec s = codes;
    s.head_dim = head_dim;
    s.validate();
  }
}

}  // namespace adamas
