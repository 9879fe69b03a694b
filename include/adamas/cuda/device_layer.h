// Device-side views of one layer of the paged KV cache, for all KV heads and a ragged batch of
// sequences: what one kernel launch covers. Plain structs of device pointers and sizes, no
// ownership (DeviceKVCache in device_cache.h owns the memory).
//
// The layout is the CPU cache's (cache/paged_kv_cache.h), head-major:
//   K, V   element i of (kv head h, page p, slot s) at
//          pool + h * kv_head_stride + p * kv_page_stride + (s * head_dim + i) * dtype_size (bytes)
//   codes  the code page (core/codes.h layout) of (h, p) at
//          code_pool + h * code_head_stride + p * code_page_stride                       (words)
// so one (sequence, head) of it is exactly the CPU PagedKV / PagedCodes view with
// head_offset = h * head_stride, and the CPU kernels can check the GPU ones on the same bytes.
#pragma once

#include <cstddef>
#include <cstdint>

#include "adamas/cache/page_table.h"
#include "adamas/common/dtype.h"
#include "adamas/core/codes.h"

namespace adamas::cuda {

struct DeviceLayer {
  std::byte* k_pool = nullptr;
  std::byte* v_pool = nullptr;
  size_t kv_head_stride = 0;  // bytes between KV heads
  size_t kv_page_stride = 0;  // bytes between page ids
  uint64_t* code_pool = nullptr;
  size_t code_head_stride = 0;  // words between KV heads
  size_t code_page_stride = 0;  // words between page ids
  // Device array [num_kv_heads][kMaxThermoPlanes]: each head's 2^bits − 1 ascending thresholds.
  const float* thresholds = nullptr;
  int num_kv_heads = 0;
  int head_dim = 0;
  int page_size = 0;
  DType dtype = DType::kF16;  // f16 or bf16 on the GPU
  int bits = 2;               // code bits, 1..3
  bool hadamard = true;

  constexpr int words() const { return (head_dim + 63) / 64; }
  constexpr int slot_stride() const { return code_slot_stride(page_size); }
  CodeSpec code_spec() const { return CodeSpec{head_dim, bits, hadamard, {}}; }
  // Throws adamas::Error naming the bad field (null pool, head_dim, dtype, bits, page size).
  // Attention alone reads no codes (with_codes = false: code_pool and thresholds may be null).
  void validate(bool with_codes = true) const;
};

// A ragged batch as CSR page tables in device memory (cache/page_table.h): sequence b has
// lengths[b] tokens in pages page_indices[page_indptr[b] ..]; max_length is a host-side bound.
using DeviceBatch = BatchView;

}  // namespace adamas::cuda
