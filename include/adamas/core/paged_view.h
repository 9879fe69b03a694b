// Read-only views of one (layer, sequence, KV head) inside the paged KV cache. Plain structs of
// pointers and sizes, with no ownership: the kernels of every backend take them as they are.
//
// A sequence's token t lives in page page_ids[t / page_size], slot t % page_size. Pages are taken
// from a pool; page id p of this head starts at  pool + p * page_stride + head_offset.
#pragma once

#include <cstddef>
#include <cstdint>

#include "adamas/common/dtype.h"

namespace adamas {

// Keys and values: per page and head, [page_size][head_dim] elements of `dtype`, rows contiguous.
struct PagedKV {
  const std::byte* k_pool = nullptr;
  const std::byte* v_pool = nullptr;
  size_t page_stride = 0;  // bytes between consecutive page ids
  size_t head_offset = 0;  // bytes from a page's start to this head's [page_size][head_dim] block
  const int32_t* page_ids = nullptr;  // [ceil(length / page_size)]
  int page_size = 0;
  int head_dim = 0;
  int length = 0;  // tokens in the sequence
  DType dtype = DType::kF16;

  const std::byte* key(int t) const { return row(k_pool, t); }
  const std::byte* value(int t) const { return row(v_pool, t); }
  const std::byte* row(const std::byte* pool, int t) const {
    const size_t page = static_cast<size_t>(page_ids[t / page_size]);
    const size_t slot = static_cast<size_t>(t % page_size);
    return pool + page * page_stride + head_offset + slot * head_dim * dtype_size(dtype);
  }
};

// Packed key codes: per page and head, one code page (layout in codes.h), in uint64 words.
struct PagedCodes {
  const uint64_t* pool = nullptr;
  size_t page_stride = 0;  // words between consecutive page ids
  size_t head_offset = 0;  // words from a page's start to this head's code page
  const int32_t* page_ids = nullptr;
  int page_size = 0;
  int slot_stride = 0;  // code_slot_stride(page_size)
  int length = 0;

  const uint64_t* page(int page_index) const {
    return pool + static_cast<size_t>(page_ids[page_index]) * page_stride + head_offset;
  }
};

// Quest metadata: per page and head, [2][head_dim] floats: channel-wise min then max of the keys
// written to that page so far.
struct PagedMinMax {
  const float* pool = nullptr;
  size_t page_stride = 0;  // floats between consecutive page ids
  size_t head_offset = 0;  // floats from a page's start to this head's [2][head_dim] block
  const int32_t* page_ids = nullptr;
  int page_size = 0;
  int head_dim = 0;
  int length = 0;

  const float* page_min(int page_index) const {
    return pool + static_cast<size_t>(page_ids[page_index]) * page_stride + head_offset;
  }
  const float* page_max(int page_index) const { return page_min(page_index) + head_dim; }
};

}  // namespace adamas
