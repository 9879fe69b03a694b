#include "adamas/cache/paged_kv_cache.h"

#include <sys/mman.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>

#include "adamas/core/hadamard.h"
#include "common/check.h"
#include "common/parallel.h"

namespace adamas {
namespace {

// Zero-filled, lazily committed memory from mmap, on transparent huge pages where the kernel
// allows: a head's rows are strided by the page stride across the pool, and with 4 KiB pages
// nearly every code block of a head would cost a TLB miss.
struct MapDeleter {
  size_t bytes = 0;
  void operator()(void* p) const {
    if (p != nullptr) munmap(p, bytes);
  }
};
template <class T>
using Pool = std::unique_ptr<T[], MapDeleter>;

template <class T>
Pool<T> allocate(size_t count, const char* what) {
  const size_t bytes = count * sizeof(T);
  if (bytes == 0) return Pool<T>(nullptr, MapDeleter{0});
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    throw Error(
        fmt::format("cannot allocate {:.1f} MiB for the KV cache's {}", bytes / 1048576.0, what));
  }
  madvise(p, bytes, MADV_HUGEPAGE);  // a hint: failure only costs speed
  return Pool<T>(static_cast<T*>(p), MapDeleter{bytes});
}

// The config, validated (the member initializers need it before the constructor body runs).
CacheConfig validated(CacheConfig config) {
  config.validate();
  config.codes.head_dim = config.head_dim;
  return config;
}

}  // namespace

struct PagedKVCache::Layer {
  Pool<std::byte> k, v;
  Pool<uint64_t> codes;
  Pool<float> minmax;
  std::vector<std::vector<float>> thresholds;  // [kv_head]
  std::vector<std::vector<float>> levels;      // [kv_head], dist=ip
};

PagedKVCache::PagedKVCache(const CacheConfig& config)
    : config_(validated(config)),
      tables_(config_.num_layers, config_.num_pages, config_.page_size) {
  const size_t P = config_.page_size, H = config_.num_kv_heads, d = config_.head_dim;
  const size_t pages = config_.num_pages;
  kv_head_page_bytes_ = P * d * dtype_size(config_.dtype);
  code_page_words_ = config_.store_codes ? code_page_words(config_.codes, config_.page_size) : 0;
  minmax_page_floats_ = config_.store_page_minmax ? H * 2 * d : 0;
  for (int l = 0; l < config_.num_layers; ++l) {
    auto layer = std::make_unique<Layer>();
    layer->k = allocate<std::byte>(H * pages * kv_head_page_bytes_, "keys");
    layer->v = allocate<std::byte>(H * pages * kv_head_page_bytes_, "values");
    layer->codes = allocate<uint64_t>(pages * H * code_page_words_, "key codes");
    layer->minmax = allocate<float>(pages * minmax_page_floats_, "page min/max");
    if (config_.store_codes) {
      layer->thresholds.assign(H, config_.codes.effective_thresholds());
      layer->levels.assign(H, default_levels(layer->thresholds[0]));
    }
    layers_.push_back(std::move(layer));
  }
}

PagedKVCache::~PagedKVCache() = default;

SeqId PagedKVCache::add_sequence() { return tables_.add_sequence(); }

void PagedKVCache::check_layer(int layer) const {
  ADAMAS_CHECK(layer >= 0 && layer < config_.num_layers, "layer {} out of range [0, {})", layer,
               config_.num_layers);
}
void PagedKVCache::check_kv_head(int kv_head) const {
  ADAMAS_CHECK(kv_head >= 0 && kv_head < config_.num_kv_heads, "kv_head {} out of range [0, {})",
               kv_head, config_.num_kv_heads);
}

size_t PagedKVCache::kv_offset(int32_t page, int kv_head, int slot) const {
  return (size_t(kv_head) * config_.num_pages + page) * kv_head_page_bytes_ +
         size_t(slot) * config_.head_dim * dtype_size(config_.dtype);
}

void PagedKVCache::remove_sequence(SeqId seq) { tables_.remove_sequence(seq); }

int PagedKVCache::length(int layer, SeqId seq) const { return tables_.length(layer, seq); }

void PagedKVCache::truncate(SeqId seq, int length) {
  tables_.truncate(seq, length);
  if (!config_.store_page_minmax) return;
  const int P = config_.page_size, d = config_.head_dim;
  const std::span<const int32_t> pages = tables_.pages(seq);
  for (int layer = 0; layer < config_.num_layers; ++layer) {
    const int len = tables_.length(layer, seq);
    if (len % P == 0) continue;  // the last page is whole: its min/max are exact
    const int32_t page = pages[len / P];
    for (int h = 0; h < config_.num_kv_heads; ++h) {
      float* lo = layers_[layer]->minmax.get() + page * minmax_page_floats_ + size_t(h) * 2 * d;
      std::fill(lo, lo + d, INFINITY);
      std::fill(lo + d, lo + 2 * d, -INFINITY);
      update_minmax(layer, page, h, 0, len % P);
    }
  }
}

void PagedKVCache::append(int layer, SeqId seq, const void* k, const void* v, DType src, int n) {
  check_layer(layer);
  const int len = tables_.length(layer, seq);  // unknown or removed ids throw here
  ADAMAS_CHECK(n >= 0, "cannot append {} tokens", n);
  if (n == 0) return;
  ADAMAS_CHECK(k != nullptr && v != nullptr, "append: null K or V pointer");
  ADAMAS_CHECK(int64_t{len} + n <= std::numeric_limits<int>::max(),
               "append: sequence {} would hold {} tokens in layer {} (at most {})", seq,
               int64_t{len} + n, layer, std::numeric_limits<int>::max());
  const int P = config_.page_size, H = config_.num_kv_heads, d = config_.head_dim;
  const size_t pages_before = tables_.pages(seq).size();
  tables_.reserve(seq, int64_t{len} + n);  // a full pool throws here, nothing taken
  const std::span<const int32_t> pages = tables_.pages(seq);
  if (config_.store_page_minmax) {  // fresh pages: empty min/max in every layer
    for (size_t i = pages_before; i < pages.size(); ++i) {
      for (auto& l : layers_) {
        float* mm = l->minmax.get() + pages[i] * minmax_page_floats_;
        for (int h = 0; h < H; ++h) {
          std::fill(mm + h * 2 * d, mm + h * 2 * d + d, INFINITY);
          std::fill(mm + h * 2 * d + d, mm + h * 2 * d + 2 * d, -INFINITY);
        }
      }
    }
  }
  Layer& L = *layers_[layer];
  const size_t src_row = static_cast<size_t>(d) * dtype_size(src);
  const size_t dst_row = static_cast<size_t>(d) * dtype_size(config_.dtype);
  // Heads are independent: each thread converts, encodes and updates min/max of its heads, page
  // run by page run (codes and min/max are computed per contiguous run of slots).
  parallel_for(n >= 64 ? H : 1, 0, [&](int h0) {
    std::vector<float> tmp(d);
    auto store = [&](std::byte* dst, const std::byte* from) {
      if (src == config_.dtype) {
        std::memcpy(dst, from, dst_row);
      } else {
        convert_to_f32(from, src, tmp.data(), d);
        convert_from_f32(tmp.data(), dst, config_.dtype, d);
      }
    };
    const int h_begin = n >= 64 ? h0 : 0, h_end = n >= 64 ? h0 + 1 : H;
    for (int h = h_begin; h < h_end; ++h) {
      for (int done = 0; done < n;) {
        const int pos = len + done;
        const int32_t page = pages[pos / P];
        const int slot0 = pos % P;
        const int run = std::min(n - done, P - slot0);
        const size_t head_off = kv_offset(page, h, slot0);
        for (int r = 0; r < run; ++r) {
          const size_t src_off = (size_t(done + r) * H + h) * src_row;
          store(L.k.get() + head_off + r * dst_row, static_cast<const std::byte*>(k) + src_off);
          store(L.v.get() + head_off + r * dst_row, static_cast<const std::byte*>(v) + src_off);
        }
        if (config_.store_codes) encode_codes(layer, page, h, slot0, run);
        if (config_.store_page_minmax) update_minmax(layer, page, h, slot0, run);
        done += run;
      }
    }
  });
  tables_.set_length(layer, seq, len + n);
}

void PagedKVCache::encode_codes(int layer, int32_t page, int kv_head, int slot0, int n) {
  Layer& L = *layers_[layer];
  const int P = config_.page_size, d = config_.head_dim;
  const std::byte* keys = L.k.get() + kv_offset(page, kv_head, slot0);
  uint64_t* code_page =
      L.codes.get() + (size_t(kv_head) * config_.num_pages + page) * code_page_words_;
  encode_keys(config_.codes, L.thresholds[kv_head], keys, config_.dtype, n, d, code_page,
              code_slot_stride(P), slot0);
}

void PagedKVCache::update_minmax(int layer, int32_t page, int kv_head, int slot0, int n) {
  Layer& L = *layers_[layer];
  const int d = config_.head_dim;
  const size_t row = static_cast<size_t>(d) * dtype_size(config_.dtype);
  const std::byte* keys = L.k.get() + kv_offset(page, kv_head, slot0);
  float* lo = L.minmax.get() + page * minmax_page_floats_ + size_t(kv_head) * 2 * d;
  float* hi = lo + d;
  std::vector<float> x(d);
  for (int r = 0; r < n; ++r) {
    convert_to_f32(keys + r * row, config_.dtype, x.data(), d);
    for (int i = 0; i < d; ++i) {
      lo[i] = std::min(lo[i], x[i]);
      hi[i] = std::max(hi[i], x[i]);
    }
  }
}

void PagedKVCache::set_thresholds(int layer, int kv_head, std::span<const float> thresholds) {
  check_layer(layer);
  check_kv_head(kv_head);
  ADAMAS_CHECK(config_.store_codes, "this cache stores no key codes (store_codes = false)");
  CodeSpec spec = config_.codes;
  spec.thresholds.assign(thresholds.begin(), thresholds.end());
  spec.validate();
  layers_[layer]->thresholds[kv_head] = spec.thresholds;
  layers_[layer]->levels[kv_head] = default_levels(spec.thresholds);
  const int P = config_.page_size;
  for (SeqId seq : tables_.live_sequences()) {
    const int len = tables_.length(layer, seq);
    const std::span<const int32_t> pages = tables_.pages(seq);
    for (int pi = 0; pi * P < len; ++pi) {
      encode_codes(layer, pages[pi], kv_head, 0, std::min(P, len - pi * P));
    }
  }
}

void PagedKVCache::calibrate_thresholds(int layer, int max_samples) {
  check_layer(layer);
  ADAMAS_CHECK(config_.store_codes, "this cache stores no key codes (store_codes = false)");
  ADAMAS_CHECK(max_samples >= 1, "max_samples must be ≥ 1, got {}", max_samples);
  const std::vector<SeqId> live = tables_.live_sequences();
  int64_t total = 0;
  for (SeqId seq : live) total += tables_.length(layer, seq);
  ADAMAS_CHECK(total > 0, "cannot calibrate layer {}: it holds no keys", layer);
  const int d = config_.head_dim;
  const int64_t step = (total + max_samples - 1) / max_samples;  // ≤ max_samples keys taken
  std::vector<float> x(d);
  for (int h = 0; h < config_.num_kv_heads; ++h) {
    std::vector<float> values;
    int64_t index = 0;
    for (SeqId seq : live) {
      const PagedKV view = kv(layer, seq, h);
      for (int t = 0; t < view.length; ++t, ++index) {
        if (index % step != 0) continue;
        convert_to_f32(view.key(t), config_.dtype, x.data(), d);
        if (config_.codes.hadamard) hadamard_transform(x.data(), 1, d);
        values.insert(values.end(), x.begin(), x.end());
      }
    }
    set_thresholds(layer, h, adamas::calibrate_thresholds(values, config_.codes.bits));
    layers_[layer]->levels[h] = bucket_centroids(values, layers_[layer]->thresholds[h]);
  }
}

void PagedKVCache::set_levels(int layer, int kv_head, std::span<const float> levels) {
  check_layer(layer);
  check_kv_head(kv_head);
  ADAMAS_CHECK(config_.store_codes, "this cache stores no key codes (store_codes = false)");
  check_levels(levels, config_.codes.bits);
  layers_[layer]->levels[kv_head].assign(levels.begin(), levels.end());
}

std::span<const float> PagedKVCache::levels(int layer, int kv_head) const {
  check_layer(layer);
  check_kv_head(kv_head);
  ADAMAS_CHECK(config_.store_codes, "this cache stores no key codes (store_codes = false)");
  return layers_[layer]->levels[kv_head];
}

std::span<const float> PagedKVCache::thresholds(int layer, int kv_head) const {
  check_layer(layer);
  check_kv_head(kv_head);
  ADAMAS_CHECK(config_.store_codes, "this cache stores no key codes (store_codes = false)");
  return layers_[layer]->thresholds[kv_head];
}

PagedKV PagedKVCache::kv(int layer, SeqId seq, int kv_head) const {
  check_layer(layer);
  check_kv_head(kv_head);
  const std::span<const int32_t> pages = tables_.pages(seq);
  const Layer& L = *layers_[layer];
  PagedKV v;
  v.k_pool = L.k.get();
  v.v_pool = L.v.get();
  v.page_stride = kv_head_page_bytes_;
  v.head_offset = size_t(kv_head) * config_.num_pages * kv_head_page_bytes_;
  v.page_ids = pages.data();
  v.page_size = config_.page_size;
  v.head_dim = config_.head_dim;
  v.length = tables_.length(layer, seq);
  v.dtype = config_.dtype;
  return v;
}

PagedCodes PagedKVCache::codes(int layer, SeqId seq, int kv_head) const {
  check_layer(layer);
  check_kv_head(kv_head);
  ADAMAS_CHECK(config_.store_codes, "this cache stores no key codes (store_codes = false)");
  const std::span<const int32_t> pages = tables_.pages(seq);
  PagedCodes c;
  c.pool = layers_[layer]->codes.get();
  c.page_stride = code_page_words_;
  c.head_offset = size_t(kv_head) * config_.num_pages * code_page_words_;
  c.page_ids = pages.data();
  c.page_size = config_.page_size;
  c.slot_stride = code_slot_stride(config_.page_size);
  c.length = tables_.length(layer, seq);
  return c;
}

PagedMinMax PagedKVCache::minmax(int layer, SeqId seq, int kv_head) const {
  check_layer(layer);
  check_kv_head(kv_head);
  ADAMAS_CHECK(config_.store_page_minmax,
               "this cache stores no page min/max (store_page_minmax = false)");
  const std::span<const int32_t> pages = tables_.pages(seq);
  PagedMinMax m;
  m.pool = layers_[layer]->minmax.get();
  m.page_stride = minmax_page_floats_;
  m.head_offset = size_t(kv_head) * 2 * config_.head_dim;
  m.page_ids = pages.data();
  m.page_size = config_.page_size;
  m.head_dim = config_.head_dim;
  m.length = tables_.length(layer, seq);
  return m;
}

size_t PagedKVCache::bytes() const {
  const size_t pages = config_.num_pages;
  return layers_.size() * pages *
         (config_.num_kv_heads * (2 * kv_head_page_bytes_ + code_page_words_ * 8) +
          minmax_page_floats_ * 4);
}

}  // namespace adamas
