#include "adamas/cuda/device_cache.h"

#include <algorithm>

#include "adamas/cuda/kernels.h"
#include "common/check.h"

namespace adamas::cuda {

DeviceKVCache::DeviceKVCache(const CacheConfig& config) : config_(config) {
  config_.codes.head_dim = config_.head_dim;
  config_.validate();
  ADAMAS_CHECK(config_.dtype == DType::kF16 || config_.dtype == DType::kBF16,
               "the GPU cache dtype must be f16 or bf16, got {}", dtype_name(config_.dtype));
  ADAMAS_CHECK(config_.store_codes, "the GPU cache keeps key codes: store_codes must be on");
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
  free_.resize(pages);
  for (size_t i = 0; i < pages; ++i)
    free_[i] = static_cast<int32_t>(pages - 1 - i);  // low ids first
}

DeviceKVCache::~DeviceKVCache() = default;

SeqId DeviceKVCache::add_sequence() {
  Sequence s;
  s.lengths.assign(config_.num_layers, 0);
  seqs_.push_back(std::move(s));
  return static_cast<SeqId>(seqs_.size() - 1);
}

DeviceKVCache::Sequence& DeviceKVCache::sequence(SeqId seq) {
  ADAMAS_CHECK(seq >= 0 && static_cast<size_t>(seq) < seqs_.size() && seqs_[seq].live,
               "unknown or removed sequence id {}", seq);
  return seqs_[seq];
}
const DeviceKVCache::Sequence& DeviceKVCache::sequence(SeqId seq) const {
  return const_cast<DeviceKVCache*>(this)->sequence(seq);
}

void DeviceKVCache::check_layer(int layer) const {
  ADAMAS_CHECK(layer >= 0 && layer < config_.num_layers, "layer {} out of range [0, {})", layer,
               config_.num_layers);
}

void DeviceKVCache::remove_sequence(SeqId seq) {
  Sequence& s = sequence(seq);
  for (auto it = s.pages.rbegin(); it != s.pages.rend(); ++it) free_.push_back(*it);
  s.pages.clear();
  s.live = false;
}

int DeviceKVCache::length(int layer, SeqId seq) const {
  check_layer(layer);
  return sequence(seq).lengths[layer];
}

std::span<const int32_t> DeviceKVCache::page_table(SeqId seq) const { return sequence(seq).pages; }

void DeviceKVCache::reserve(Sequence& s, int64_t tokens) {
  const size_t need = static_cast<size_t>(config_.pages_for(tokens));
  if (need <= s.pages.size()) return;
  const size_t extra = need - s.pages.size();
  ADAMAS_CHECK(extra <= free_.size(),
               "KV cache is full: {} more pages of {} tokens are needed for {} tokens, but only {} "
               "of {} pages are free",
               extra, config_.page_size, tokens, free_.size(), config_.num_pages);
  for (size_t i = 0; i < extra; ++i) {
    s.pages.push_back(free_.back());
    free_.pop_back();
  }
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
  Sequence& s = sequence(seq);
  ADAMAS_CHECK(n >= 0, "cannot append {} tokens", n);
  if (n == 0) return;
  ADAMAS_CHECK(k != nullptr && v != nullptr, "append: null K or V pointer");
  const int len = s.lengths[layer];
  const size_t pages_before = s.pages.size();
  reserve(s, int64_t{len} + n);
  std::vector<int32_t> slots(n);
  const int P = config_.page_size;
  for (int i = 0; i < n; ++i) slots[i] = s.pages[(len + i) / P] * P + (len + i) % P;
  try {
    launch_append(layer, slots, k, v, src, stream);
  } catch (...) {  // a failed launch leaves the sequence as it was, its new pages freed
    while (s.pages.size() > pages_before) {
      free_.push_back(s.pages.back());
      s.pages.pop_back();
    }
    throw;
  }
  s.lengths[layer] = len + n;
}

void DeviceKVCache::append_batch(int layer, std::span<const SeqId> seqs, const void* k,
                                 const void* v, DType src, cudaStream_t stream) {
  check_layer(layer);
  if (seqs.empty()) return;
  ADAMAS_CHECK(k != nullptr && v != nullptr, "append: null K or V pointer");
  // Check that every sequence fits before taking any page (a full pool changes nothing).
  size_t extra = 0;
  for (SeqId id : seqs) {
    const Sequence& s = sequence(id);
    extra += static_cast<size_t>(config_.pages_for(int64_t{s.lengths[layer]} + 1)) > s.pages.size();
  }
  ADAMAS_CHECK(extra <= free_.size(),
               "KV cache is full: the batch needs {} more pages, {} are free", extra, free_.size());
  const int P = config_.page_size;
  std::vector<int32_t> slots;
  for (SeqId id : seqs) {
    Sequence& s = sequence(id);
    const int len = s.lengths[layer];
    reserve(s, int64_t{len} + 1);
    slots.push_back(s.pages[len / P] * P + len % P);
    s.lengths[layer] = len + 1;
  }
  launch_append(layer, slots, k, v, src, stream);
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
  std::vector<int32_t> slots;
  const int P = config_.page_size;
  for (const Sequence& s : seqs_) {
    if (!s.live) continue;
    for (int t = 0; t < s.lengths[layer]; ++t) slots.push_back(s.pages[t / P] * P + t % P);
  }
  if (!slots.empty()) launch_append(layer, slots, nullptr, nullptr, config_.dtype, nullptr);
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
  check_layer(layer);
  ADAMAS_CHECK(!seqs.empty(), "a batch needs at least one sequence");
  int max_length = 0;
  size_t stride = 1;
  for (SeqId id : seqs) {
    const Sequence& s = sequence(id);
    ADAMAS_CHECK(s.lengths[layer] >= 1, "sequence {} has no tokens in layer {}", id, layer);
    max_length = std::max(max_length, s.lengths[layer]);
    stride = std::max(stride, s.pages.size());
  }
  std::vector<int32_t> host(seqs.size() * stride + seqs.size(), 0);
  for (size_t b = 0; b < seqs.size(); ++b) {
    const Sequence& s = sequence(seqs[b]);
    std::copy(s.pages.begin(), s.pages.end(), host.begin() + b * stride);
    host[seqs.size() * stride + b] = s.lengths[layer];
  }
  batch_table_.upload(host, stream);
  DeviceBatch view;
  view.page_table = batch_table_.data();
  view.page_table_stride = static_cast<int>(stride);
  view.lengths = batch_table_.data() + seqs.size() * stride;
  view.batch = static_cast<int>(seqs.size());
  view.max_length = max_length;
  return view;
}

size_t DeviceKVCache::bytes() const {
  size_t total = 0;
  for (const Layer& l : layers_) total += l.k.size() + l.v.size() + l.codes.size() * 8;
  return total;
}

}  // namespace adamas::cuda
