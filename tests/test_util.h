// Shared helpers of the Adamas test suite: seeded random data, relative errors, SIMD target
// iteration, hand-built paged views (shuffled page ids, garbage in every byte the kernels must not
// read) and a PagedKVCache filled with random K/V whose stored values are remembered.
//
// Everything here is deliberately independent of the code under test, except for the dtype
// conversions (tested on their own against the compiler's _Float16 and an explicit rounding rule
// in tests/common/dtype_test.cc) and the cache itself (tests/cache).
#pragma once

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <iostream>
#include <limits>
#include <memory>
#include <numeric>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "adamas/cache/paged_kv_cache.h"
#include "adamas/common/dtype.h"
#include "adamas/common/error.h"
#include "adamas/core/codes.h"
#include "adamas/core/paged_view.h"
#include "hwy/targets.h"

namespace adamas::test {

using ::testing::AllOf;
using ::testing::HasSubstr;

// ---------------------------------------------------------------------------------------------
// Random data (fixed seeds; std::mt19937 is specified bit-exactly by the standard).

inline std::vector<float> random_normal(std::mt19937& g, size_t n, float sigma = 1.0f) {
  std::normal_distribution<float> dist(0.0f, sigma);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(g);
  return v;
}

inline std::vector<float> random_uniform(std::mt19937& g, size_t n, float lo, float hi) {
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(g);
  return v;
}

inline int random_int(std::mt19937& g, int lo, int hi) {  // inclusive
  return std::uniform_int_distribution<int>(lo, hi)(g);
}

inline std::vector<uint8_t> random_buckets(std::mt19937& g, size_t n, int bits) {
  std::uniform_int_distribution<int> dist(0, (1 << bits) - 1);
  std::vector<uint8_t> v(n);
  for (auto& x : v) x = static_cast<uint8_t>(dist(g));
  return v;
}

// ---------------------------------------------------------------------------------------------
// Comparisons.

// ‖a − b‖ / ‖b‖ in double (‖a − b‖ when b is zero). Inf/NaN anywhere gives +inf.
inline double rel_error(std::span<const float> a, std::span<const float> b) {
  if (a.size() != b.size()) return INFINITY;
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!std::isfinite(a[i]) || !std::isfinite(b[i])) return INFINITY;
    const double d = double{a[i]} - double{b[i]};
    num += d * d;
    den += double{b[i]} * double{b[i]};
  }
  return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}
inline double rel_error(const std::vector<float>& a, const std::vector<float>& b) {
  return rel_error(std::span<const float>(a), std::span<const float>(b));
}
inline double rel_error(const float* a, const float* b, size_t n) {
  return rel_error(std::span<const float>(a, n), std::span<const float>(b, n));
}

// The message of the adamas::Error thrown by f, or a marker that says what happened instead.
template <class F>
std::string error_message(F&& f) {
  try {
    f();
  } catch (const adamas::Error& e) {
    return e.what();
  } catch (const std::exception& e) {
    return std::string("<not an adamas::Error: ") + e.what() + ">";
  }
  return "<no exception>";
}

// Rounds a float to what storage of type t keeps.
inline float round_to(DType t, float x) {
  switch (t) {
    case DType::kF32:
      return x;
    case DType::kF16:
      return f16_to_f32(f32_to_f16(x));
    case DType::kBF16:
      return bf16_to_f32(f32_to_bf16(x));
  }
  return x;
}
inline void round_all(DType t, std::vector<float>& v) {
  for (auto& x : v) x = round_to(t, x);
}

inline const char* dtype_str(DType t) {
  return t == DType::kF32 ? "f32" : t == DType::kF16 ? "f16" : "bf16";
}

// ---------------------------------------------------------------------------------------------
// SIMD targets: runs fn once per Highway target that the library was compiled for (the test
// targets get the library's HWY_* definitions, see tests/CMakeLists.txt) and the CPU supports.

inline std::vector<int64_t> compiled_targets() { return hwy::SupportedAndGeneratedTargets(); }

inline std::string target_names() {
  std::string s;
  for (int64_t t : compiled_targets()) s += std::string(s.empty() ? "" : " ") + hwy::TargetName(t);
  return s;
}

struct TargetReset {
  ~TargetReset() { hwy::SetSupportedTargetsForTest(0); }
};

template <class F>
void for_each_target(F&& fn) {
  static bool printed = false;
  const auto targets = compiled_targets();
  ASSERT_FALSE(targets.empty());
  if (!printed) {
    std::cout << "[ targets  ] running the fast paths on: " << target_names() << std::endl;
    printed = true;
  }
  TargetReset reset;
  for (int64_t t : targets) {
    hwy::SetSupportedTargetsForTest(t);
    SCOPED_TRACE(std::string("SIMD target ") + hwy::TargetName(t));
    fn(t);
  }
}

// ---------------------------------------------------------------------------------------------
// Independent references.

// Orthonormal Sylvester Hadamard matrix built by the recursion H_2n = [[H, H], [H, −H]] (not by
// the popcount formula the library's reference uses), row-major d × d, scaled by 1/sqrt(d).
inline std::vector<double> sylvester_matrix(int d) {
  std::vector<double> h{1.0};
  for (int n = 1; n < d; n *= 2) {
    std::vector<double> g(size_t(4) * n * n);
    for (int i = 0; i < n; ++i)
      for (int j = 0; j < n; ++j) {
        const double v = h[size_t(i) * n + j];
        g[size_t(i) * 2 * n + j] = v;
        g[size_t(i) * 2 * n + j + n] = v;
        g[size_t(i + n) * 2 * n + j] = v;
        g[size_t(i + n) * 2 * n + j + n] = -v;
      }
    h.swap(g);
  }
  const double s = 1.0 / std::sqrt(double(d));
  for (auto& x : h) x *= s;
  return h;
}

// y = x · H (double), H from sylvester_matrix.
inline std::vector<double> hadamard_double(const float* x, int d, const std::vector<double>& H) {
  std::vector<double> y(d, 0.0);
  for (int i = 0; i < d; ++i)
    for (int j = 0; j < d; ++j) y[j] += double{x[i]} * H[size_t(i) * d + j];
  return y;
}

// Exact softmax attention in double over positions idx of K/V rows (row t at K + t * d).
inline std::vector<float> brute_attention(const float* q, const float* K, const float* V, int d,
                                          const std::vector<int32_t>& idx, double scale) {
  std::vector<double> s(idx.size());
  double mx = -INFINITY;
  for (size_t i = 0; i < idx.size(); ++i) {
    double acc = 0;
    for (int j = 0; j < d; ++j) acc += double{q[j]} * K[size_t(idx[i]) * d + j];
    s[i] = acc * scale;
    mx = std::max(mx, s[i]);
  }
  double sum = 0;
  std::vector<double> o(d, 0.0);
  for (size_t i = 0; i < idx.size(); ++i) {
    const double p = std::exp(s[i] - mx);
    sum += p;
    for (int j = 0; j < d; ++j) o[j] += p * V[size_t(idx[i]) * d + j];
  }
  std::vector<float> out(d);
  for (int j = 0; j < d; ++j) out[j] = static_cast<float>(o[j] / sum);
  return out;
}

inline std::vector<int32_t> iota_positions(int n) {
  std::vector<int32_t> v(n);
  std::iota(v.begin(), v.end(), 0);
  return v;
}

// ---------------------------------------------------------------------------------------------
// Hand-built paged views. A pool of `num_pages` pages × `num_heads` heads; the sequence uses a
// random subset of page ids in shuffled order and head `head`. Every other byte (other heads,
// unused pages, unused slots of the last page) holds garbage.

inline std::vector<int32_t> shuffled_page_ids(std::mt19937& g, int used, int total) {
  std::vector<int32_t> ids(total);
  std::iota(ids.begin(), ids.end(), 0);
  std::shuffle(ids.begin(), ids.end(), g);
  ids.resize(used);
  return ids;
}

struct ManualKV {
  int length = 0, page_size = 1, head_dim = 16, num_heads = 2, head = 1, num_pages = 0;
  DType dtype = DType::kF32;
  std::vector<std::byte> k_pool, v_pool;
  std::vector<int32_t> page_ids;
  std::vector<float> keys, values;  // [length][head_dim], as stored (rounded to dtype)

  PagedKV view() const {
    PagedKV v;
    v.k_pool = k_pool.data();
    v.v_pool = v_pool.data();
    const size_t row = size_t(head_dim) * dtype_size(dtype);
    v.page_stride = size_t(num_heads) * page_size * row;
    v.head_offset = size_t(head) * page_size * row;
    v.page_ids = page_ids.data();
    v.page_size = page_size;
    v.head_dim = head_dim;
    v.length = length;
    v.dtype = dtype;
    return v;
  }
  const float* key(int t) const { return keys.data() + size_t(t) * head_dim; }
};

inline ManualKV make_manual_kv(uint32_t seed, int length, int page_size, int head_dim, DType dtype,
                               float sigma = 1.0f) {
  std::mt19937 g(seed);
  ManualKV m;
  m.length = length;
  m.page_size = page_size;
  m.head_dim = head_dim;
  m.dtype = dtype;
  const int used = (length + page_size - 1) / page_size;
  m.num_pages = used + 3;
  m.page_ids = shuffled_page_ids(g, used, m.num_pages);
  const size_t es = dtype_size(dtype);
  const size_t elems = size_t(m.num_pages) * m.num_heads * page_size * head_dim;
  // Garbage everywhere first (large finite values: reading them would show).
  auto fill_garbage = [&](std::vector<std::byte>& pool) {
    const auto junk = random_uniform(g, elems, -300.f, 300.f);
    pool.resize(elems * es);
    convert_from_f32(junk.data(), pool.data(), dtype, elems);
  };
  fill_garbage(m.k_pool);
  fill_garbage(m.v_pool);
  m.keys = random_normal(g, size_t(length) * head_dim, sigma);
  m.values = random_normal(g, size_t(length) * head_dim, 1.0f);
  round_all(dtype, m.keys);
  round_all(dtype, m.values);
  const PagedKV v = m.view();
  for (int t = 0; t < length; ++t) {
    convert_from_f32(m.keys.data() + size_t(t) * head_dim, const_cast<std::byte*>(v.key(t)), dtype,
                     head_dim);
    convert_from_f32(m.values.data() + size_t(t) * head_dim, const_cast<std::byte*>(v.value(t)),
                     dtype, head_dim);
  }
  return m;
}

// Key codes in the codes.h layout, written by hand (not by encode_keys): for each key its bucket
// vector, bits planes, word w of plane p of slot s at page[(p * words + w) * slot_stride + s].
inline void pack_key_planes(const uint8_t* buckets, int bits, int d, uint64_t* page,
                            int slot_stride, int slot) {
  const int words = (d + 63) / 64;
  for (int p = 0; p < bits; ++p)
    for (int w = 0; w < words; ++w) {
      uint64_t word = 0;
      for (int i = w * 64; i < std::min(d, w * 64 + 64); ++i)
        if ((buckets[i] >> p) & 1) word |= uint64_t{1} << (i - w * 64);
      page[(size_t(p) * words + w) * slot_stride + slot] = word;
    }
}

// A query's thermometer planes built by hand from its buckets.
inline QueryCode thermometer_query(const uint8_t* buckets, int bits, int d) {
  QueryCode q;
  q.bits = bits;
  q.words = (d + 63) / 64;
  for (int m = 1; m < (1 << bits); ++m)
    for (int i = 0; i < d; ++i)
      if (buckets[i] >= m) q.planes[size_t(m - 1) * q.words + i / 64] |= uint64_t{1} << (i % 64);
  return q;
}

// A hand-built code pool: `num_pages` code pages × 2 heads, shuffled page ids, garbage in the
// other head, the unused pages and the unused slots. The sequence's key buckets are given.
struct ManualCodes {
  int length = 0, page_size = 1, bits = 2, head_dim = 16, num_heads = 2, head = 1;
  size_t page_words = 0;  // one head's code page
  std::vector<uint64_t> pool;
  std::vector<int32_t> page_ids;

  PagedCodes view() const {
    PagedCodes c;
    c.pool = pool.data();
    c.page_stride = page_words * num_heads;
    c.head_offset = page_words * head;
    c.page_ids = page_ids.data();
    c.page_size = page_size;
    c.slot_stride = code_slot_stride(page_size);
    c.length = length;
    return c;
  }
  uint64_t* page_ptr(int page_index) {
    return pool.data() + size_t(page_ids[page_index]) * page_words * num_heads + page_words * head;
  }
};

// Allocates the pool with garbage; the caller writes the sequence's codes (by hand or with
// encode_keys) through page_ptr().
inline ManualCodes make_code_pool(std::mt19937& g, int length, int page_size, int bits,
                                  int head_dim) {
  ManualCodes c;
  c.length = length;
  c.page_size = page_size;
  c.bits = bits;
  c.head_dim = head_dim;
  c.page_words = size_t(bits) * ((head_dim + 63) / 64) * code_slot_stride(page_size);
  const int used = (length + page_size - 1) / page_size;
  const int total = used + 2;
  c.page_ids = shuffled_page_ids(g, used, total);
  c.pool.resize(size_t(total) * c.num_heads * c.page_words);
  std::uniform_int_distribution<uint64_t> dist;
  for (auto& w : c.pool) w = dist(g);
  return c;
}

// ---------------------------------------------------------------------------------------------
// A PagedKVCache filled with random K/V: sequences appended interleaved (round robin, random
// chunks of 1..max_chunk tokens: prefill chunks and single tokens mixed), every layer, with the
// values as stored (rounded to the cache dtype) remembered for the references.

struct FilledCache {
  std::unique_ptr<PagedKVCache> cache;
  std::vector<SeqId> seqs;
  // [layer][seq index][kv_head] → [length][head_dim]
  std::vector<std::vector<std::vector<std::vector<float>>>> k, v;
  CacheConfig config() const { return cache->config(); }
  const float* key(int layer, int s, int h, int t) const {
    return k[layer][s][h].data() + size_t(t) * cache->config().head_dim;
  }
  const float* keys(int layer, int s, int h) const { return k[layer][s][h].data(); }
  const float* values(int layer, int s, int h) const { return v[layer][s][h].data(); }
};

// lengths[s]: tokens of sequence s in every layer. If config.num_pages == 0 it is set to what the
// sequences need plus `spare` pages.
inline FilledCache make_filled_cache(CacheConfig config, const std::vector<int>& lengths,
                                     uint32_t seed, float sigma = 1.0f, int max_chunk = 17,
                                     int spare = 2) {
  if (config.num_pages == 0) {
    int pages = spare;
    for (int len : lengths) pages += config.pages_for(len);
    config.num_pages = std::max(pages, 1);
  }
  std::mt19937 g(seed);
  FilledCache fc;
  fc.cache = std::make_unique<PagedKVCache>(config);
  const int L = config.num_layers, H = config.num_kv_heads, d = config.head_dim;
  const size_t S = lengths.size();
  for (size_t s = 0; s < S; ++s) fc.seqs.push_back(fc.cache->add_sequence());
  fc.k.assign(L,
              std::vector<std::vector<std::vector<float>>>(S, std::vector<std::vector<float>>(H)));
  fc.v = fc.k;
  std::vector<int> done(S * L, 0);
  bool more = true;
  while (more) {
    more = false;
    for (size_t s = 0; s < S; ++s) {
      for (int l = 0; l < L; ++l) {
        int& dn = done[s * L + l];
        if (dn >= lengths[s]) continue;
        const int n = std::min(lengths[s] - dn, random_int(g, 1, max_chunk));
        auto kk = random_normal(g, size_t(n) * H * d, sigma);
        auto vv = random_normal(g, size_t(n) * H * d, 1.0f);
        fc.cache->append(l, fc.seqs[s], kk.data(), vv.data(), n);
        for (int t = 0; t < n; ++t)
          for (int h = 0; h < H; ++h)
            for (int i = 0; i < d; ++i) {
              const size_t src = (size_t(t) * H + h) * d + i;
              fc.k[l][s][h].push_back(round_to(config.dtype, kk[src]));
              fc.v[l][s][h].push_back(round_to(config.dtype, vv[src]));
            }
        dn += n;
        more = more || dn < lengths[s];
      }
    }
  }
  return fc;
}

inline CacheConfig small_cache_config(int head_dim, int page_size, DType dtype, int kv_heads = 1,
                                      int layers = 1) {
  CacheConfig c;
  c.num_layers = layers;
  c.num_kv_heads = kv_heads;
  c.head_dim = head_dim;
  c.page_size = page_size;
  c.num_pages = 0;
  c.dtype = dtype;
  return c;
}

}  // namespace adamas::test
