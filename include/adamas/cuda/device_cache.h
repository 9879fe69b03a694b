// The paged KV cache in device memory: the CPU PagedKVCache's layout and page bookkeeping
// (PageTables, cache/page_table.h, on the host), with K/V and key codes in GPU pools and appends
// done by the fused append kernel.
// Quest's page min/max are not kept on the GPU (Quest is a CPU baseline); config.store_page_minmax
// is ignored.
#pragma once

#include <cuda_runtime_api.h>

#include <memory>
#include <span>
#include <vector>

#include "adamas/cache/cache_config.h"
#include "adamas/cache/page_table.h"
#include "adamas/cuda/device_layer.h"
#include "adamas/cuda/runtime.h"

namespace adamas::cuda {

class DeviceKVCache {
 public:
  // dtype must be f16 or bf16; store_codes must be on. Throws adamas::Error naming the field.
  explicit DeviceKVCache(const CacheConfig& config);
  ~DeviceKVCache();
  DeviceKVCache(const DeviceKVCache&) = delete;
  DeviceKVCache& operator=(const DeviceKVCache&) = delete;

  const CacheConfig& config() const { return config_; }

  SeqId add_sequence();
  void remove_sequence(SeqId seq);

  // Appends n tokens to one layer of a sequence: k and v are *device* arrays
  // [n][num_kv_heads][head_dim] of type `src`. A full pool throws and leaves the sequence as it
  // was.
  void append(int layer, SeqId seq, const void* k, const void* v, DType src, int n,
              cudaStream_t stream = nullptr);
  // Appends one token to each sequence of `seqs` in one launch (a decode step):
  // k and v are [seqs.size()][num_kv_heads][head_dim]. All or nothing: when the pool cannot hold
  // every sequence's token, or the launch fails, it throws and no sequence changes. A sequence
  // listed k times gets k tokens, in batch order.
  void append_batch(int layer, std::span<const SeqId> seqs, const void* k, const void* v, DType src,
                    cudaStream_t stream = nullptr);

  int length(int layer, SeqId seq) const { return tables_.length(layer, seq); }
  // Shortens the sequence to its first `length` tokens in every layer (a layer already shorter
  // keeps its length) and frees the pages no longer used: PagedKVCache::truncate on the GPU (no
  // device work: the codes of the tokens kept are unchanged, and GPU pages keep no min/max).
  void truncate(SeqId seq, int length) { tables_.truncate(seq, length); }
  std::span<const int32_t> page_table(SeqId seq) const { return tables_.pages(seq); }
  int free_pages() const { return tables_.free_pages(); }
  // The page bookkeeping. The mutable one lets a runtime reserve a step's pages for every layer
  // at once (then batch tables with extra = 1, and append_batch per layer).
  const PageTables& page_tables() const { return tables_; }
  PageTables& page_tables() { return tables_; }

  // Per-head thresholds; setting them re-encodes every key of that layer on the GPU (on the
  // default stream, and waits for it).
  void set_thresholds(int layer, int kv_head, std::span<const float> thresholds);
  std::vector<float> thresholds(int layer, int kv_head) const;

  DeviceLayer layer(int layer) const;
  // Uploads the CSR page tables and lengths of `seqs` (in that order) in `layer` (one copy) and
  // returns the batch view; it stays valid until the next call of batch() or upload() on this
  // cache. Waits for the copy (the host tables are reused).
  DeviceBatch batch(int layer, std::span<const SeqId> seqs, cudaStream_t stream = nullptr);
  // Uploads tables built by page_tables().batch() the same way (one copy, same validity).
  DeviceBatch upload(const BatchTables& tables, cudaStream_t stream = nullptr);

  size_t bytes() const;

 private:
  void check_layer(int layer) const;
  // Global slot of token `position` of a sequence whose pages are reserved.
  int32_t slot(std::span<const int32_t> pages, int64_t position) const {
    return static_cast<int32_t>(int64_t{pages[position / config_.page_size]} * config_.page_size +
                                position % config_.page_size);
  }
  void launch_append(int layer, const std::vector<int32_t>& slots, const void* k, const void* v,
                     DType src, cudaStream_t stream);

  CacheConfig config_;  // before tables_: validated first
  PageTables tables_;
  size_t kv_page_bytes_ = 0;    // one page, one head
  size_t code_page_words_ = 0;  // one page, one head
  struct Layer {
    DeviceBuffer<std::byte> k, v;
    DeviceBuffer<uint64_t> codes;
    DeviceBuffer<float> thresholds;  // [num_kv_heads][kMaxThermoPlanes]
    std::vector<float> host_thresholds;
  };
  std::vector<Layer> layers_;
  std::vector<int32_t> host_slots_;    // staging for append (host)
  DeviceBuffer<int32_t> slots_;        // staging for append
  BatchTables host_batch_;             // staging for batch() (host)
  std::vector<int32_t> host_tables_;   // page_indptr, page_indices, lengths, one piece
  DeviceBuffer<int32_t> batch_table_;  // the same on the device
};

}  // namespace adamas::cuda
