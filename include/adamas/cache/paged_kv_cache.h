// Paged KV cache for a batch of sequences of different lengths, per layer:
//   K, V         [num_kv_heads][num_pages][page_size][head_dim]   dtype f32/f16/bf16
//   key codes    [num_kv_heads][num_pages][code page]             (codes.h layout)
//   Quest min/max[num_pages][num_kv_heads][2][head_dim]            fp32
// Head-major: a head's pages are contiguous, so a sequence whose pages were taken in order is
// one sequential stream per head (estimate and dense attention read one head per task).
// Pages come from one free list shared by all layers: a sequence has one page table, and page
// id p holds that sequence's tokens [i·P, (i+1)·P) in every layer (the bookkeeping is PageTables,
// cache/page_table.h, shared with the GPU cache). Growth takes free pages and never moves data.
// Codes and min/max are computed once, when a key is appended, from the key as stored (after
// rounding to the cache dtype), so every backend encodes the same bits.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "adamas/cache/cache_config.h"
#include "adamas/cache/page_table.h"
#include "adamas/common/dtype.h"
#include "adamas/core/codes.h"
#include "adamas/core/paged_view.h"

namespace adamas {

class PagedKVCache {
 public:
  explicit PagedKVCache(const CacheConfig& config);
  ~PagedKVCache();
  PagedKVCache(const PagedKVCache&) = delete;
  PagedKVCache& operator=(const PagedKVCache&) = delete;

  const CacheConfig& config() const { return config_; }

  SeqId add_sequence();
  // Frees the sequence's pages. Its id is not reused.
  void remove_sequence(SeqId seq);

  // Appends n tokens to one layer of a sequence: k and v are [n][num_kv_heads][head_dim] of type
  // `src` (rows contiguous). Takes free pages as needed; a full pool throws adamas::Error and
  // leaves the sequence unchanged.
  void append(int layer, SeqId seq, const void* k, const void* v, DType src, int n);
  void append(int layer, SeqId seq, const float* k, const float* v, int n) {
    append(layer, seq, k, v, DType::kF32, n);
  }

  int length(int layer, SeqId seq) const;
  // Shortens the sequence to its first `length` tokens in every layer (a layer already shorter
  // keeps its length) and frees the pages no longer used; the last page's Quest min/max are
  // recomputed from the keys that remain. Lets callers decode several continuations (or several
  // policies) from one prefill.
  void truncate(SeqId seq, int length);
  int free_pages() const { return tables_.free_pages(); }
  std::span<const int32_t> page_table(SeqId seq) const { return tables_.pages(seq); }
  // The page bookkeeping (page tables, lengths, free list); batch() gives CSR tables of a batch.
  const PageTables& page_tables() const { return tables_; }

  // Per-head thresholds of the key codes (default: config.codes' effective thresholds).
  // Setting them re-encodes the codes of every key already stored in that layer and head.
  void set_thresholds(int layer, int kv_head, std::span<const float> thresholds);
  std::span<const float> thresholds(int layer, int kv_head) const;
  // Calibrates every KV head of a layer from the keys stored so far (all live sequences): the
  // equal-mass quantiles of the (transformed) key elements, from at most `max_samples` keys
  // spread over the positions; then re-encodes, and sets the code levels to the bucket means of
  // the same samples. Throws when the layer holds no keys.
  void calibrate_thresholds(int layer, int max_samples = 4096);
  // Code levels per head for dist=ip (codes.h): set_thresholds resets them to
  // default_levels(thresholds); calibrate_thresholds to the bucket means. Codes are unchanged.
  void set_levels(int layer, int kv_head, std::span<const float> levels);
  std::span<const float> levels(int layer, int kv_head) const;

  PagedKV kv(int layer, SeqId seq, int kv_head) const;
  PagedCodes codes(int layer, SeqId seq, int kv_head) const;
  PagedMinMax minmax(int layer, SeqId seq, int kv_head) const;

  // Bytes held by the pools (all layers).
  size_t bytes() const;

 private:
  void check_layer(int layer) const;
  void check_kv_head(int kv_head) const;
  void encode_codes(int layer, int32_t page, int kv_head, int slot0, int n);
  void update_minmax(int layer, int32_t page, int kv_head, int slot0, int n);

  size_t kv_offset(int32_t page, int kv_head, int slot) const;  // bytes into a K or V pool

  CacheConfig config_;  // before tables_: validated first
  PageTables tables_;

  size_t kv_head_page_bytes_ = 0;  // one page of one head, K (or V)
  size_t code_page_words_ = 0;     // one page, one head
  size_t minmax_page_floats_ = 0;
  struct Layer;
  std::vector<std::unique_ptr<Layer>> layers_;
};

}  // namespace adamas
