#include "adamas/cuda/device_cache.h"

#include <algorithm>
#include <limits>

#include "adamas/cuda/kernels.h"
#include "common/check.h"

namespace adamas::cuda {

namespace {

// The config, validated for the GPU (the member initializers need it before the body runs).
CacheConfig validated(CacheConfig config) {
  config.codes.head_dim = config.head_dim;
  config.validate();
  ADAMAS_CHECK(config.dtype == DType::kF16 || config.dtype == DType::kBF16,
               "the GPU cache dtype must be f16 or bf16, got {}", dtype_name(config.dtype));
  ADAMAS_CHECK(config.store_codes, "the GPU cache keeps key codes: store_codes must be on");
  ADAMAS_CHECK(int64_t{config.num_pages} * config.page_size <= std::numeric_limits<int32_t>::max(),
               "num_pages ({}) · page_size ({}) must be at most 2^31 - 1 (32-bit slot indices)",
               config.num_pages, config.page_size);
  return config;
}

}  // namespace

DeviceKVCache::DeviceKVCache(const CacheConfig& config)
    : config_(validated(config)),
      tables_(config_.num_layers, config_.num_pages, config_.page_size) {
  const size_t pages = static_cast<size_t>(config_.num_pages), H = config_.num_kv_heads;
  kv_page_bytes_ =
      static_cast<size_t>(config_.page_size) * config_.head_dim * dtype_size(config_.dtype);
  code_page_words_ = code_page_words(config_.codes, config_.page_size);
  std::vector<float> defaults(kMaxThermoPlanes, 0.0f);
  const std::vector<float> t = config_.codes.effective_thresholds();
  std::copy(t.begin(), t.end(), defaults.begin());
  layers_.resize(config_.num_layers);
  for (Layer& l : layers_) {
    l.k.resize(H * pages * kv_page_bytes_);
    l.v.resize(H * pages * kv_page_bytes_);
    l.codes.resize(H * pages * code_page_words_);
    l.codes.fill_bytes(0);  // slots past a page's end stay zero, like the CPU pool
    l.host_thresholds.clear();
    for (size_t h = 0; h < H; ++h)
      l.host_thresholds.insert(l.host_thresholds.end(), defaults.begin(), defaults.end());
    l.thresholds.upload(l.host_thresholds);
  }
}

DeviceKVCache::~DeviceKVCache() = default;

SeqId DeviceKVCache::add_sequence() { return tables_.add_sequence(); }

void DeviceKVCache::remove_sequence(SeqId seq) { tables_.remove_sequence(seq); }

void DeviceKVCache::check_layer(int layer) const {
  ADAMAS_CHECK(layer >= 0 && layer < config_.num_layers, "layer {} out of range [0, {})", layer,
               config_.num_layers);
}

void DeviceKVCache::launch_append(int layer, const std::vector<int32_t>& slots, const void* k,
                                  const void* v, DType src, cudaStream_t stream) {
  slots_.upload(slots, stream);
  if (k == nullptr) {
    encode_stored_keys(this->layer(layer), slots_.data(), static_cast<int>(slots.size()), stream);
  } else {
    append_kv(this->layer(layer), slots_.data(), static_cast<int>(slots.size()), k, v, src, stream);
  }
}

void DeviceKVCache::append(int layer, SeqId seq, const void* k, const void* v, DType src, int n,
                           cudaStream_t stream) {
  check_layer(layer);
  const int len = tables_.length(layer, seq);  // unknown or removed ids throw here
  ADAMAS_CHECK(n >= 0, "cannot append {} tokens", n);
  if (n == 0) return;
  ADAMAS_CHECK(k != nullptr && v != nullptr, "append: null K or V pointer");
  ADAMAS_CHECK(int64_t{len} + n <= std::numeric_limits<int>::max(),
               "append: sequence {} would hold {} tokens in layer {} (at most {})", seq,
               int64_t{len} + n, layer, std::numeric_limits<int>::max());
  const size_t pages_before = tables_.pages(seq).size();
  tables_.reserve(seq, int64_t{len} + n);  // a full pool throws here, nothing taken
  const std::span<const int32_t> pages = tables_.pages(seq);
  host_slots_.resize(n);
  for (int i = 0; i < n; ++i) host_slots_[i] = slot(pages, int64_t{len} + i);
  try {
    launch_append(layer, host_slots_, k, v, src, stream);
  } catch (...) {  // a failed launch leaves the sequence as it was, its new pages freed
    tables_.rollback(seq, pages_before);
    throw;
  }
  tables_.set_length(layer, seq, len + n);
}

void DeviceKVCache::append_batch(int layer, std::span<const SeqId> seqs, const void* k,
                                 const void* v, DType src, cudaStream_t stream) {
  check_layer(layer);
  if (seqs.empty()) return;
  ADAMAS_CHECK(k != nullptr && v != nullptr, "append: null K or V pointer");
  const size_t n = seqs.size();
  // Entry i writes token tokens[i] − 1 of its sequence: its length, plus one per earlier entry of
  // the same sequence.
  std::vector<int64_t> tokens(n);
  std::vector<size_t> pages_before(n);
  for (size_t i = 0; i < n; ++i) {
    tokens[i] = int64_t{tables_.length(layer, seqs[i])} + 1;  // unknown ids throw here
    pages_before[i] = tables_.pages(seqs[i]).size();
  }
  std::vector<size_t> order(n);
  for (size_t i = 0; i < n; ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return seqs[a] < seqs[b]; });
  for (size_t i = 1; i < n; ++i)
    if (seqs[order[i]] == seqs[order[i - 1]]) tokens[order[i]] = tokens[order[i - 1]] + 1;
  for (size_t i = 0; i < n; ++i)
    ADAMAS_CHECK(tokens[i] <= std::numeric_limits<int>::max(),
                 "append: sequence {} would hold {} tokens in layer {}", seqs[i], tokens[i], layer);
  tables_.reserve(seqs, tokens);  // all or nothing: a full pool throws before any page is taken
  host_slots_.resize(n);
  for (size_t i = 0; i < n; ++i) host_slots_[i] = slot(tables_.pages(seqs[i]), tokens[i] - 1);
  try {
    launch_append(layer, host_slots_, k, v, src, stream);
  } catch (...) {  // a failed launch changes no sequence: the pages taken go back
    for (size_t i = n; i-- > 0;) tables_.rollback(seqs[i], pages_before[i]);
    throw;
  }
  for (size_t i = 0; i < n; ++i)
    tables_.set_length(layer, seqs[i], static_cast<int>(tokens[i]));  // duplicates: last wins
}

void DeviceKVCache::set_thresholds(int layer, int kv_head, std::span<const float> thresholds) {
  check_layer(layer);
  ADAMAS_CHECK(kv_head >= 0 && kv_head < config_.num_kv_heads, "kv_head {} out of range [0, {})",
               kv_head, config_.num_kv_heads);
  CodeSpec spec = config_.codes;
  spec.thresholds.assign(thresholds.begin(), thresholds.end());
  spec.validate();  // count and order
  Layer& l = layers_[layer];
  std::copy(thresholds.begin(), thresholds.end(),
            l.host_thresholds.begin() + kv_head * kMaxThermoPlanes);
  l.thresholds.upload(l.host_thresholds);
  // Re-encode every stored key of the layer (the kernel covers all heads; the others' codes are
  // rewritten with the same bits).
  host_slots_.clear();
  for (SeqId seq : tables_.live_sequences()) {
    const std::span<const int32_t> pages = tables_.pages(seq);
    const int len = tables_.length(layer, seq);
    for (int t = 0; t < len; ++t) host_slots_.push_back(slot(pages, t));
  }
  if (!host_slots_.empty())
    launch_append(layer, host_slots_, nullptr, nullptr, config_.dtype, nullptr);
  check(cudaStreamSynchronize(nullptr), "set_thresholds");
}

std::vector<float> DeviceKVCache::thresholds(int layer, int kv_head) const {
  check_layer(layer);
  ADAMAS_CHECK(kv_head >= 0 && kv_head < config_.num_kv_heads, "kv_head {} out of range [0, {})",
               kv_head, config_.num_kv_heads);
  const auto& t = layers_[layer].host_thresholds;
  const auto* first = t.data() + kv_head * kMaxThermoPlanes;
  return {first, first + config_.codes.thermo_planes()};
}

DeviceLayer DeviceKVCache::layer(int layer) const {
  check_layer(layer);
  const Layer& l = layers_[layer];
  DeviceLayer view;
  view.k_pool = const_cast<std::byte*>(l.k.data());
  view.v_pool = const_cast<std::byte*>(l.v.data());
  view.kv_page_stride = kv_page_bytes_;
  view.kv_head_stride = kv_page_bytes_ * config_.num_pages;
  view.code_pool = const_cast<uint64_t*>(l.codes.data());
  view.code_page_stride = code_page_words_;
  view.code_head_stride = code_page_words_ * config_.num_pages;
  view.thresholds = l.thresholds.data();
  view.num_kv_heads = config_.num_kv_heads;
  view.head_dim = config_.head_dim;
  view.page_size = config_.page_size;
  view.dtype = config_.dtype;
  view.bits = config_.codes.bits;
  view.hadamard = config_.codes.hadamard;
  return view;
}

DeviceBatch DeviceKVCache::batch(int layer, std::span<const SeqId> seqs, cudaStream_t stream) {
  tables_.batch(seqs, layer, 0, host_batch_);
  return upload(host_batch_, stream);
}

DeviceBatch DeviceKVCache::upload(const BatchTables& tables, cudaStream_t stream) {
  const size_t batch = tables.lengths.size();
  ADAMAS_CHECK(batch >= 1, "a batch needs at least one sequence");
  ADAMAS_CHECK(tables.page_indptr.size() == batch + 1,
               "batch tables: page_indptr has {} entries, batch + 1 = {} expected",
               tables.page_indptr.size(), batch + 1);
  ADAMAS_CHECK(
      tables.page_indptr.front() == 0 &&
          static_cast<size_t>(tables.page_indptr.back()) == tables.page_indices.size(),
      "batch tables: page_indptr must run from 0 to page_indices.size() = {}, got {} .. {}",
      tables.page_indices.size(), tables.page_indptr.front(), tables.page_indptr.back());
  ADAMAS_CHECK(tables.max_length >= 1, "batch tables: max_length must be ≥ 1, got {}",
               tables.max_length);
  // One piece: page_indptr, then page_indices, then lengths (all int32).
  host_tables_.clear();
  host_tables_.insert(host_tables_.end(), tables.page_indptr.begin(), tables.page_indptr.end());
  host_tables_.insert(host_tables_.end(), tables.page_indices.begin(), tables.page_indices.end());
  host_tables_.insert(host_tables_.end(), tables.lengths.begin(), tables.lengths.end());
  batch_table_.upload(host_tables_, stream);
  DeviceBatch view;
  view.page_indptr = batch_table_.data();
  view.page_indices = view.page_indptr + tables.page_indptr.size();
  view.lengths = view.page_indices + tables.page_indices.size();
  view.batch = static_cast<int>(batch);
  view.max_length = tables.max_length;
  return view;
}

size_t DeviceKVCache::bytes() const {
  size_t total = 0;
  for (const Layer& l : layers_) total += l.k.size() + l.v.size() + l.codes.size() * 8;
  return total;
}

}  // namespace adamas::cuda
