#include "adamas/cuda/device_layer.h"

#include "adamas/core/hadamard.h"
#include "common/check.h"

namespace adamas::cuda {

void DeviceLayer::validate(bool with_codes) const {
  ADAMAS_CHECK(k_pool != nullptr && v_pool != nullptr, "device layer: null K/V pool");
  if (with_codes) {
    ADAMAS_CHECK(code_pool != nullptr,
                 "device layer: null code pool (selection and append need key codes)");
    ADAMAS_CHECK(thresholds != nullptr, "device layer: null thresholds");
  }
  check_head_dim(head_dim);
  ADAMAS_CHECK(dtype == DType::kF16 || dtype == DType::kBF16,
               "the GPU cache dtype must be f16 or bf16, got {}", dtype_name(dtype));
  ADAMAS_CHECK(bits >= 1 && bits <= kMaxCodeBits, "code bits must be 1, 2 or 3, got {}", bits);
  ADAMAS_CHECK(page_size >= 1, "page_size must be ≥ 1, got {}", page_size);
  ADAMAS_CHECK(num_kv_heads >= 1, "num_kv_heads must be ≥ 1, got {}", num_kv_heads);
}

}  // namespace adamas::cuda
