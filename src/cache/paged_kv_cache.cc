#include "adamas/cache/paged_kv_cache.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include <sys/mman.h>

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
    throw Error(fmt::format("cannot allocate {:.1f} MiB for the KV cache's {}", bytes / 1048576.0,
                            what));
  }
  madvise(p, bytes, MADV_HUGEPAGE);  // a hint: failure only costs speed
  return Pool<T>(static_cast<T*>(p), MapDeleter{bytes});
}

}  // namespace

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

struct PagedKVCache::Layer {
  Pool<std::byte> k, v;
  Pool<uint64_t> codes;
  Pool<float> minmax;
  std::vector<std::vector<float>> thresholds;  // [kv_head]
};

struct PagedKVCache::Sequence {
  bool alive = true;
  std::vector<int32_t> pages;
  std::vector<int> length;  // [layer]
};

PagedKVCache::PagedKVCache(const CacheConfig& config) : config_(config) {
  config_.validate();
  config_.codes.head_dim = config_.head_dim;
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
    }
    layers_.push_back(std::move(layer));
  }
  free_.resize(pages);
  // Hand out low page ids first (free_ is used as a stack).
  for (size_t i = 0; i < pages; ++i) free_[i] = static_cast<int32_t>(pages - 1 - i);
}

PagedKVCache::~PagedKVCache() = default;

SeqId PagedKVCache::add_sequence() {
  auto s = std::make_unique<Sequence>();
  s->length.assign(config_.num_layers, 0);
  seqs_.push_back(std::move(s));
  return static_cast<SeqId>(seqs_.size() - 1);
}

PagedKVCache::Sequence& PagedKVCache::sequence(SeqId seq) {
  ADAMAS_CHECK(seq >= 0 && static_cast<size_t>(seq) < seqs_.size() && seqs_[seq]->alive,
               "unknown or removed sequence id {}", seq);
  return *seqs_[seq];
}
const PagedKVCache::Sequence& PagedKVCache::sequence(SeqId seq) const {
  return const_cast<PagedKVCache*>(this)->sequence(seq);
}

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

void PagedKVCache::remove_sequence(SeqId seq) {
  Sequence& s = sequence(seq);
  for (auto it = s.pages.rbegin(); it != s.pages.rend(); ++it) free_.push_back(*it);
  s.pages.clear();
  s.alive = false;
}

int PagedKVCache::length(int layer, SeqId seq) const {
  check_layer(layer);
  return sequence(seq).length[layer];
}

void PagedKVCache::truncate(SeqId seq, int length) {
  Sequence& s = sequence(seq);
  ADAMAS_CHECK(length >= 0, "cannot truncate sequence {} to {} tokens", seq, length);
  int longest = 0;
  for (int& l : s.length) {
    l = std::min(l, length);
    longest = std::max(longest, l);
  }
  const size_t keep = static_cast<size_t>(config_.pages_for(longest));
  while (s.pages.size() > keep) {
    free_.push_back(s.pages.back());
    s.pages.pop_back();
  }
  if (!config_.store_page_minmax) return;
  const int P = config_.page_size, d = config_.head_dim;
  for (int layer = 0; layer < config_.num_layers; ++layer) {
    const int len = s.length[layer];
    if (len % P == 0) continue;  // the last page is whole: its min/max are exact
    const int32_t page = s.pages[len / P];
    for (int h = 0; h < config_.num_kv_heads; ++h) {
      float* lo = layers_[layer]->minmax.get() + page * minmax_page_floats_ + size_t(h) * 2 * d;
      std::fill(lo, lo + d, INFINITY);
      std::fill(lo + d, lo + 2 * d, -INFINITY);
      update_minmax(layer, page, h, 0, len % P);
    }
  }
}

std::span<const int32_t> PagedKVCache::page_table(SeqId seq) const { return sequence(seq).pages; }

void PagedKVCache::append(int layer, SeqId seq, const void* k, const void* v, DType src, int n) {
  check_layer(layer);
  Sequence& s = sequence(seq);
  ADAMAS_CHECK(n >= 0, "cannot append {} tokens", n);
  if (n == 0) return;
  ADAMAS_CHECK(k != nullptr && v != nullptr, "append: null K or V pointer");
  const int P = config_.page_size, H = config_.num_kv_heads, d = config_.head_dim;
  const int len = s.length[layer];
  const size_t need = static_cast<size_t>(config_.pages_for(int64_t{len} + n));
  if (need > s.pages.size()) {
    const size_t extra = need - s.pages.size();
    ADAMAS_CHECK(extra <= free_.size(),
                 "KV cache is full: sequence {} needs {} more pages of {} tokens for {} tokens, "
                 "but only {} of {} pages are free",
                 seq, extra, P, n, free_.size(), config_.num_pages);
    for (size_t i = 0; i < extra; ++i) {
      const int32_t page = free_.back();
      free_.pop_back();
      s.pages.push_back(page);
      if (config_.store_page_minmax) {  // fresh page: empty min/max in every layer
        for (auto& l : layers_) {
          float* mm = l->minmax.get() + page * minmax_page_floats_;
          for (int h = 0; h < H; ++h) {
            std::fill(mm + h * 2 * d, mm + h * 2 * d + d, INFINITY);
            std::fill(mm + h * 2 * d + d, mm + h * 2 * d + 2 * d, -INFINITY);
          }
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
        const int32_t page = s.pages[pos / P];
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
  s.length[layer] = len + n;
}

void PagedKVCache::encode_codes(int layer, int32_t page, int kv_head, int slot0, int n) {
  Layer& L = *layers_[layer];
  const int P = config_.page_size, d = config_.head_dim;
  const std::byte* keys =
      L.k.get() + kv_offset(page, kv_head, slot0);
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
  const int P = config_.page_size;
  for (auto& s : seqs_) {
    if (!s->alive) continue;
    const int len = s->length[layer];
    for (int pi = 0; pi * P < len; ++pi) {
      encode_codes(layer, s->pages[pi], kv_head, 0, std::min(P, len - pi * P));
    }
  }
}

void PagedKVCache::calibrate_thresholds(int layer, int max_samples) {
  check_layer(layer);
  ADAMAS_CHECK(config_.store_codes, "this cache stores no key codes (store_codes = false)");
  ADAMAS_CHECK(max_samples >= 1, "max_samples must be ≥ 1, got {}", max_samples);
  int64_t total = 0;
  for (auto& s : seqs_)
    if (s->alive) total += s->length[layer];
  ADAMAS_CHECK(total > 0, "cannot calibrate layer {}: it holds no keys", layer);
  const int d = config_.head_dim;
  const int64_t step = (total + max_samples - 1) / max_samples;  // ≤ max_samples keys taken
  std::vector<float> x(d);
  for (int h = 0; h < config_.num_kv_heads; ++h) {
    std::vector<float> values;
    int64_t index = 0;
    for (auto& s : seqs_) {
      if (!s->alive) continue;
      const PagedKV view = kv(layer, static_cast<SeqId>(&s - seqs_.data()), h);
      for (int t = 0; t < view.length; ++t, ++index) {
        if (index % step != 0) continue;
        convert_to_f32(view.key(t), config_.dtype, x.data(), d);
        if (config_.codes.hadamard) hadamard_transform(x.data(), 1, d);
        values.insert(values.end(), x.begin(), x.end());
      }
    }
    set_thresholds(layer, h, adamas::calibrate_thresholds(values, config_.codes.bits));
  }
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
  const Sequence& s = sequence(seq);
  const Layer& L = *layers_[layer];
  PagedKV v;
  v.k_pool = L.k.get();
  v.v_pool = L.v.get();
  v.page_stride = kv_head_page_bytes_;
  v.head_offset = size_t(kv_head) * config_.num_pages * kv_head_page_bytes_;
  v.page_ids = s.pages.data();
  v.page_size = config_.page_size;
  v.head_dim = config_.head_dim;
  v.length = s.length[layer];
  v.dtype = config_.dtype;
  return v;
}

PagedCodes PagedKVCache::codes(int layer, SeqId seq, int kv_head) const {
  check_layer(layer);
  check_kv_head(kv_head);
  ADAMAS_CHECK(config_.store_codes, "this cache stores no key codes (store_codes = false)");
  const Sequence& s = sequence(seq);
  PagedCodes c;
  c.pool = layers_[layer]->codes.get();
  c.page_stride = code_page_words_;
  c.head_offset = size_t(kv_head) * config_.num_pages * code_page_words_;
  c.page_ids = s.pages.data();
  c.page_size = config_.page_size;
  c.slot_stride = code_slot_stride(config_.page_size);
  c.length = s.length[layer];
  return c;
}

PagedMinMax PagedKVCache::minmax(int layer, SeqId seq, int kv_head) const {
  check_layer(layer);
  check_kv_head(kv_head);
  ADAMAS_CHECK(config_.store_page_minmax,
               "this cache stores no page min/max (store_page_minmax = false)");
  const Sequence& s = sequence(seq);
  PagedMinMax m;
  m.pool = layers_[layer]->minmax.get();
  m.page_stride = minmax_page_floats_;
  m.head_offset = size_t(kv_head) * 2 * config_.head_dim;
  m.page_ids = s.pages.data();
  m.page_size = config_.page_size;
  m.head_dim = config_.head_dim;
  m.length = s.length[layer];
  return m;
}

size_t PagedKVCache::bytes() const {
  const size_t pages = config_.num_pages;
  return layers_.size() * pages *
         (config_.num_kv_heads * (2 * kv_head_page_bytes_ + code_page_words_ * 8) +
          minmax_page_floats_ * 4);
}

}  // namespace adamas
