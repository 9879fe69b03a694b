// The paged KV cache in device memory: the CPU PagedKVCache's layout and page bookkeeping (host
// side), with K/V and key codes in GPU pools and appends done by the fused append kernel.
// Quest's page min/max are not kept on the GPU (Quest is a CPU baseline); config.store_page_minmax
// is ignored.
#pragma once

#include <cuda_runtime_api.h>

#include <memory>
#include <span>
#include <vector>

#include "adamas/cache/paged_kv_cache.h"
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
  // k and v are [seqs.size()][num_kv_heads][head_dim].
  void append_batch(int layer, std::span<const SeqId> seqs, const void* k, const void* v, DType src,
                    cudaStream_t stream = nullptr);

  int length(int layer, SeqId seq) const;
  std::span<const int32_t> page_table(SeqId seq) const;
  int free_pages() const { return static_cast<int>(free_.size()); }

  // Per-head thresholds; setting them re-encodes every key of that layer on the GPU (on the
  // default stream, and waits for it).
  void set_thresholds(int layer, int kv_head, std::span<const float> thresholds);
  std::vector<float> thresholds(int layer, int kv_head) const;

  DeviceLayer layer(int layer) const;
  // Uploads the page tables and lengths of `seqs` (in that order) in `layer` and returns the batch
  // view; it stays valid until the next call of batch() on this cache.
  DeviceBatch batch(int layer, std::span<const SeqId> seqs, cudaStream_t stream = nullptr);

  size_t bytes() const;

 private:
  struct Sequence {
    std::vector<int32_t> pages;
    std::vector<int> lengths;  // per layer
    bool live = true;
  };
  Sequence& sequence(SeqId seq);
  const Sequence& sequence(SeqId seq) const;
  void check_layer(int layer) const;
  // Takes the pages sequence `s` needs to grow to `tokens` tokens; throws when the pool is short.
  void reserve(Sequence& s, int64_t tokens);
  void launch_append(int layer, const std::vector<int32_t>& slots, const void* k, const void* v,
                     DType src, cudaStream_t stream);

  CacheConfig config_;
  size_t kv_page_bytes_ = 0;    // one page, one head
  size_t code_page_words_ = 0;  // one page, one head
  struct Layer {
    DeviceBuffer<std::byte> k, v;
    DeviceBuffer<uint64_t> codes;
    DeviceBuffer<float> thresholds;  // [num_kv_heads][kMaxThermoPlanes]
    std::vector<float> host_thresholds;
  };
  std::vector<Layer> layers_;
  std::vector<Sequence> seqs_;
  std::vector<int32_t> free_;
  DeviceBuffer<int32_t> slots_;        // staging for append
  DeviceBuffer<int32_t> batch_table_;  // staging for batch(): page tables then lengths
};

}  // namespace adamas::cuda
