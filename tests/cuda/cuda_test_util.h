// Shared helpers of the CUDA backend's test suite (tests/cuda): the skip-without-a-GPU fixture,
// host <-> device copies, the attention tolerance, and two ways to get a device layer:
//
//   TestLayer  a hand-built DeviceLayer + DeviceBatch over pools written on the host (K/V, key
//              codes from random buckets, per-head thresholds), head-major as device_layer.h
//              says, with shuffled page ids and garbage everywhere the kernels must not read.
//              Host copies of every pool give the CPU views (PagedKV / PagedCodes) the references
//              run on, so the kernel tests do not depend on DeviceKVCache or the append kernel.
//   TwinCache  a CPU PagedKVCache and a DeviceKVCache with the same CacheConfig, fed the same
//              appends (the same bytes), for the append / cache / decoder tests.
//
// Every test here runs on the GPU only: the fixture CudaTest skips (with the reason) when no CUDA
// device is usable, and checks after each test that no asynchronous CUDA error is pending.
#pragma once

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "adamas/cache/paged_kv_cache.h"
#include "adamas/common/dtype.h"
#include "adamas/common/error.h"
#include "adamas/core/codes.h"
#include "adamas/core/paged_view.h"
#include "adamas/cuda/decode.h"
#include "adamas/cuda/device_cache.h"
#include "adamas/cuda/device_layer.h"
#include "adamas/cuda/kernels.h"
#include "adamas/cuda/runtime.h"
#include "adamas/policy/policy.h"
#include "test_util.h"

// Skips the current test (with the reason) unless a CUDA device is usable. Every test of this
// suite starts with it, through the CudaTest fixture's SetUp().
#define ADAMAS_REQUIRE_CUDA()                                                 \
  do {                                                                        \
    if (!::adamas::cuda::available())                                         \
      GTEST_SKIP() << "no CUDA device: " << ::adamas::cuda::device_summary(); \
  } while (0)

namespace adamas::test {

using cuda::DeviceBuffer;

class CudaTest : public ::testing::Test {
 protected:
  void SetUp() override { ADAMAS_REQUIRE_CUDA(); }
  void TearDown() override {
    if (!::adamas::cuda::available()) return;
    // A kernel fault shows up here at the latest (asynchronous errors are sticky).
    const cudaError_t sync = cudaDeviceSynchronize();
    EXPECT_EQ(sync, cudaSuccess) << "pending CUDA error after the test: " << cudaGetErrorName(sync)
                                 << ": " << cudaGetErrorString(sync);
    const cudaError_t last = cudaGetLastError();
    EXPECT_EQ(last, cudaSuccess) << "CUDA error left behind: " << cudaGetErrorName(last);
  }
};

// ---------------------------------------------------------------------------------------------
// Host <-> device.

inline void device_sync() { cuda::check(cudaDeviceSynchronize(), "cudaDeviceSynchronize (test)"); }

// A device copy of v (one element at least, so that an empty vector still gives a valid pointer).
template <class T>
DeviceBuffer<T> to_device(const std::vector<T>& v) {
  DeviceBuffer<T> d(std::max<size_t>(v.size(), 1));
  if (!v.empty()) d.upload(v);
  return d;
}

template <class T>
std::vector<T> download_array(const T* dev, size_t n) {
  std::vector<T> out(n);
  if (n == 0) return out;
  cuda::check(cudaDeviceSynchronize(), "cudaDeviceSynchronize (test download)");
  cuda::check(cudaMemcpy(out.data(), dev, n * sizeof(T), cudaMemcpyDeviceToHost), "test download");
  return out;
}

template <class T>
void upload_array(T* dev, const std::vector<T>& v) {
  if (v.empty()) return;
  cuda::check(cudaMemcpy(dev, v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice),
              "test upload");
}

// ---------------------------------------------------------------------------------------------
// Fast deterministic random data (the large cases need tens of millions of values).

struct FastRng {
  uint64_t s;
  explicit FastRng(uint64_t seed) : s(seed * 0x9E3779B97F4A7C15ull + 0x632BE59BD9B4E019ull) {}
  uint64_t next() {  // splitmix64
    uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  float unit() { return static_cast<float>(next() >> 40) * (1.0f / 16777216.0f); }  // [0, 1)
  float uniform(float lo, float hi) { return lo + (hi - lo) * unit(); }
  int uniform_int(int lo, int hi) {  // inclusive
    return lo + static_cast<int>(next() % static_cast<uint64_t>(hi - lo + 1));
  }
  // Roughly normal (sum of four uniforms), variance sigma².
  float normal(float sigma = 1.0f) {
    const float s4 = unit() + unit() + unit() + unit() - 2.0f;  // variance 4/12
    return s4 * 1.7320508f * sigma;
  }
};

inline std::vector<float> fast_normal(FastRng& r, size_t n, float sigma = 1.0f) {
  std::vector<float> v(n);
  for (auto& x : v) x = r.normal(sigma);
  return v;
}

// 2^bits − 1 strictly ascending thresholds: on the grid k/8 in [-1.5, 1.5] (exactly
// representable in f16 and bf16, so stored keys can equal them), or arbitrary floats.
inline std::vector<float> random_thresholds(FastRng& r, int bits, bool grid) {
  const size_t want = (size_t{1} << bits) - 1;
  std::set<float> s;
  while (s.size() < want) s.insert(grid ? r.uniform_int(-12, 12) / 8.0f : r.uniform(-1.5f, 1.5f));
  return std::vector<float>(s.begin(), s.end());
}

// Rows of `count` sorted unique positions in [0, n), every position equally likely.
inline std::vector<int32_t> random_subset(FastRng& r, int n, int count) {
  count = std::min(count, n);
  std::vector<int32_t> out;
  out.reserve(count);
  // Selection sampling (Knuth's algorithm S): sorted by construction.
  int needed = count;
  for (int i = 0; i < n && needed > 0; ++i) {
    if (static_cast<uint64_t>(r.next() % static_cast<uint64_t>(n - i)) <
        static_cast<uint64_t>(needed)) {
      out.push_back(i);
      --needed;
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Attention tolerance: fp32 accumulation in a different summation order than the CPU.
//   max |got − want| ≤ 2e-4 · max(1, max |want|)   or   ‖got − want‖ / ‖want‖ ≤ 1e-4,
// and every element finite (outputs are poisoned with NaN before the call).

inline ::testing::AssertionResult attention_close(const float* got, const float* want, size_t n) {
  double max_abs = 0, max_ref = 0;
  size_t worst = 0;
  for (size_t i = 0; i < n; ++i) {
    if (!std::isfinite(got[i])) {
      return ::testing::AssertionFailure() << "element " << i << " is " << got[i]
                                           << " (not written, or overflow); want " << want[i];
    }
    const double e = std::fabs(double{got[i]} - double{want[i]});
    if (e > max_abs) {
      max_abs = e;
      worst = i;
    }
    max_ref = std::max(max_ref, std::fabs(double{want[i]}));
  }
  const double rel = rel_error(got, want, n);
  if (max_abs <= 2e-4 * std::max(1.0, max_ref) || rel <= 1e-4) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << "max abs error " << max_abs << " at " << worst << " (got " << got[worst] << ", want "
         << want[worst] << "), max |ref| " << max_ref << ", relative error " << rel;
}

// ---------------------------------------------------------------------------------------------
// TestLayer: a hand-built device layer and batch.

struct LayerShape {
  int kv_heads = 2;
  int head_dim = 64;
  int page_size = 16;
  int bits = 2;
  bool hadamard = true;
  DType dtype = DType::kF16;
  std::string name() const {
    return "kv_heads " + std::to_string(kv_heads) + " d " + std::to_string(head_dim) + " page " +
           std::to_string(page_size) + " bits " + std::to_string(bits) +
           (hadamard ? " hadamard " : " no-hadamard ") + dtype_str(dtype);
  }
};

struct TestLayer {
  LayerShape shape;
  int num_pages = 0;
  size_t kv_page_stride = 0, kv_head_stride = 0;      // bytes
  size_t code_page_stride = 0, code_head_stride = 0;  // words
  std::vector<std::vector<float>> thresholds;         // [kv head]
  // Host copies of the pools (empty when the layer was built without that content).
  std::vector<std::byte> k_host, v_host;
  std::vector<uint64_t> codes_host;
  // The batch: page ids and lengths per sequence, and the CSR tables the kernels read (each
  // sequence's pages followed by a few valid but wrong page ids that must not be read).
  std::vector<std::vector<int32_t>> pages;
  std::vector<int> lengths;
  std::vector<int32_t> page_indptr, page_indices;
  static constexpr int kMaxLengthSlack = 16;
  int max_length_slack = 0;  // batch().max_length = max(lengths) + slack, slack ≤ kMaxLengthSlack
  DeviceBuffer<std::byte> k_dev, v_dev;
  DeviceBuffer<uint64_t> codes_dev;
  DeviceBuffer<float> thr_dev;
  DeviceBuffer<int32_t> indptr_dev, indices_dev, lengths_dev;

  int d() const { return shape.head_dim; }
  int batch_size() const { return static_cast<int>(lengths.size()); }
  int max_length() const { return *std::max_element(lengths.begin(), lengths.end()); }
  size_t kv_pool_bytes() const { return size_t(shape.kv_heads) * kv_head_stride; }
  size_t code_pool_words() const { return size_t(shape.kv_heads) * code_head_stride; }
  CodeSpec spec() const {
    CodeSpec s;
    s.head_dim = shape.head_dim;
    s.bits = shape.bits;
    s.hadamard = shape.hadamard;
    return s;
  }

  cuda::DeviceLayer layer() {
    cuda::DeviceLayer l;
    l.k_pool = k_dev.data();
    l.v_pool = v_dev.data();
    l.kv_head_stride = kv_head_stride;
    l.kv_page_stride = kv_page_stride;
    l.code_pool = codes_dev.data();
    l.code_head_stride = code_head_stride;
    l.code_page_stride = code_page_stride;
    l.thresholds = thr_dev.data();
    l.num_kv_heads = shape.kv_heads;
    l.head_dim = shape.head_dim;
    l.page_size = shape.page_size;
    l.dtype = shape.dtype;
    l.bits = shape.bits;
    l.hadamard = shape.hadamard;
    return l;
  }
  cuda::DeviceBatch batch() const {
    cuda::DeviceBatch b;
    b.page_indptr = indptr_dev.data();
    b.page_indices = indices_dev.data();
    b.lengths = lengths_dev.data();
    b.batch = batch_size();
    b.max_length = max_length() + std::min(max_length_slack, kMaxLengthSlack);
    return b;
  }
  // CPU views over the host copies (kv needs K/V content, codes needs codes content).
  PagedKV kv(int b, int h) const {
    PagedKV v;
    v.k_pool = k_host.data();
    v.v_pool = v_host.data();
    v.page_stride = kv_page_stride;
    v.head_offset = size_t(h) * kv_head_stride;
    v.page_ids = pages[b].data();
    v.page_size = shape.page_size;
    v.head_dim = shape.head_dim;
    v.length = lengths[b];
    v.dtype = shape.dtype;
    return v;
  }
  PagedCodes codes(int b, int h, int length) const {
    PagedCodes c;
    c.pool = codes_host.data();
    c.page_stride = code_page_stride;
    c.head_offset = size_t(h) * code_head_stride;
    c.page_ids = pages[b].data();
    c.page_size = shape.page_size;
    c.slot_stride = code_slot_stride(shape.page_size);
    c.length = length;
    return c;
  }
  // Byte offset of (head, page id, slot) in a K/V pool; word offset of a code page.
  size_t kv_offset(int h, int32_t page, int slot) const {
    return size_t(h) * kv_head_stride + size_t(page) * kv_page_stride +
           size_t(slot) * shape.head_dim * dtype_size(shape.dtype);
  }
  size_t code_page_offset(int h, int32_t page) const {
    return size_t(h) * code_head_stride + size_t(page) * code_page_stride;
  }
  // Re-reads the pools from the device into the host copies.
  void download_pools() {
    k_host = download_array(k_dev.data(), kv_pool_bytes());
    v_host = download_array(v_dev.data(), kv_pool_bytes());
    codes_host = download_array(codes_dev.data(), code_pool_words());
  }
  // Uploads new per-head thresholds (host and device copies).
  void set_thresholds(const std::vector<std::vector<float>>& t) {
    thresholds = t;
    std::vector<float> flat(size_t(shape.kv_heads) * kMaxThermoPlanes, 0.0f);
    for (int h = 0; h < shape.kv_heads; ++h)
      std::copy(t[h].begin(), t[h].end(), flat.begin() + size_t(h) * kMaxThermoPlanes);
    thr_dev = to_device(flat);
  }
};

struct LayerContent {
  bool kv = true;       // random K/V in the used slots (else the device pools are zero)
  bool codes = true;    // random buckets packed into the used slots (else zero)
  bool garbage = true;  // garbage in every byte the kernels must not read
  int spare_pages = 3;
  float key_sigma = 1.0f;
};

// A ragged batch (lengths[b] ≥ 1 each) over a shuffled page pool.
inline constexpr int kMaxLengthSlack = TestLayer::kMaxLengthSlack;

inline TestLayer make_test_layer(const LayerShape& shape, const std::vector<int>& lengths,
                                 uint64_t seed, LayerContent content = {}) {
  FastRng r(seed);
  TestLayer t;
  t.shape = shape;
  t.lengths = lengths;
  const int P = shape.page_size, d = shape.head_dim, H = shape.kv_heads;
  int used = 0;
  for (int len : lengths) used += (len + P - 1) / P;
  t.num_pages = used + content.spare_pages;
  const size_t es = dtype_size(shape.dtype);
  t.kv_page_stride = size_t(P) * d * es;
  t.kv_head_stride = size_t(t.num_pages) * t.kv_page_stride;
  CodeSpec spec = t.spec();
  t.code_page_stride = code_page_words(spec, P);
  t.code_head_stride = size_t(t.num_pages) * t.code_page_stride;

  // Pages: a random permutation of the pool, handed out in order.
  std::vector<int32_t> ids(t.num_pages);
  for (int i = 0; i < t.num_pages; ++i) ids[i] = i;
  for (int i = t.num_pages - 1; i > 0; --i) std::swap(ids[i], ids[r.uniform_int(0, i)]);
  size_t next = 0;
  for (int len : lengths) {
    const int p = (len + P - 1) / P;
    t.pages.emplace_back(ids.begin() + next, ids.begin() + next + p);
    next += p;
  }
  // CSR page tables: sequence b's pages, then 3 valid but wrong page ids (a table may hold more
  // pages than the length needs; the kernels must not read past the length's pages).
  t.page_indptr.push_back(0);
  for (size_t b = 0; b < lengths.size(); ++b) {
    t.page_indices.insert(t.page_indices.end(), t.pages[b].begin(), t.pages[b].end());
    for (int i = 0; i < 3; ++i) t.page_indices.push_back(r.uniform_int(0, t.num_pages - 1));
    t.page_indptr.push_back(static_cast<int32_t>(t.page_indices.size()));
  }
  t.indptr_dev = to_device(t.page_indptr);
  t.indices_dev = to_device(t.page_indices);
  t.lengths_dev = to_device(std::vector<int32_t>(lengths.begin(), lengths.end()));

  // Thresholds: per head, grid ones on even heads (ties with grid-valued keys possible).
  std::vector<std::vector<float>> thr;
  for (int h = 0; h < H; ++h) thr.push_back(random_thresholds(r, shape.bits, h % 2 == 0));
  t.set_thresholds(thr);

  // K/V.
  const size_t pool_elems = size_t(H) * t.num_pages * P * d;
  if (content.kv) {
    std::vector<float> tmp(pool_elems);
    auto fill = [&](std::vector<std::byte>& pool, bool keys) {
      for (auto& x : tmp) x = content.garbage ? r.uniform(-300.f, 300.f) : 0.0f;
      for (int h = 0; h < H; ++h)
        for (size_t b = 0; b < lengths.size(); ++b)
          for (int tok = 0; tok < lengths[b]; ++tok) {
            const size_t at = t.kv_offset(h, t.pages[b][tok / P], tok % P) / es;
            for (int i = 0; i < d; ++i) tmp[at + i] = r.normal(keys ? content.key_sigma : 1.0f);
          }
      pool.resize(pool_elems * es);
      convert_from_f32(tmp.data(), pool.data(), shape.dtype, pool_elems);
    };
    fill(t.k_host, true);
    fill(t.v_host, false);
    t.k_dev = to_device(t.k_host);
    t.v_dev = to_device(t.v_host);
  } else {
    t.k_dev.resize(pool_elems * es);
    t.v_dev.resize(pool_elems * es);
    t.k_dev.fill_bytes(0);
    t.v_dev.fill_bytes(0);
  }

  // Codes: random buckets per key (every bucket value equally likely), packed by hand.
  const size_t code_words = size_t(H) * t.code_head_stride;
  if (content.codes) {
    t.codes_host.resize(code_words);
    for (auto& w : t.codes_host) w = content.garbage ? r.next() : 0;
    const int slot_stride = code_slot_stride(P);
    std::vector<uint8_t> buckets(d);
    for (int h = 0; h < H; ++h)
      for (size_t b = 0; b < lengths.size(); ++b)
        for (int tok = 0; tok < lengths[b]; ++tok) {
          for (auto& x : buckets) x = static_cast<uint8_t>(r.next() & ((1u << shape.bits) - 1));
          pack_key_planes(buckets.data(), shape.bits, d,
                          t.codes_host.data() + t.code_page_offset(h, t.pages[b][tok / P]),
                          slot_stride, tok % P);
        }
    t.codes_dev = to_device(t.codes_host);
  } else {
    t.codes_dev.resize(code_words);
    t.codes_dev.fill_bytes(0);
  }
  device_sync();
  return t;
}

// Reads element i of a stored row as float.
inline float stored_float(const std::byte* row, DType t, int i) {
  float x;
  convert_to_f32(row + size_t(i) * dtype_size(t), t, &x, 1);
  return x;
}

// ---------------------------------------------------------------------------------------------
// TwinCache: a CPU PagedKVCache and a DeviceKVCache fed the same appends.

struct TwinCache {
  CacheConfig config;
  DType src = DType::kF32;
  std::unique_ptr<PagedKVCache> cpu;
  std::unique_ptr<cuda::DeviceKVCache> gpu;
  std::vector<SeqId> cpu_seqs, gpu_seqs;  // by sequence index
  FastRng rng;
  // Keys always get some exact threshold ties, f16 subnormals and zeros. value_specials adds
  // rounding edge cases to the values: f16 ties to even, subnormals and overflow to inf (only
  // for the append tests: attention over an infinite value is NaN).
  bool value_specials = false;

  TwinCache(const CacheConfig& c, DType src_dtype, uint64_t seed)
      : config(c), src(src_dtype), rng(seed) {
    cpu = std::make_unique<PagedKVCache>(config);
    gpu = std::make_unique<cuda::DeviceKVCache>(config);
  }

  int add_sequence() {
    cpu_seqs.push_back(cpu->add_sequence());
    gpu_seqs.push_back(gpu->add_sequence());
    return static_cast<int>(cpu_seqs.size()) - 1;
  }
  void remove_sequence(int s) {
    cpu->remove_sequence(cpu_seqs[s]);
    gpu->remove_sequence(gpu_seqs[s]);
  }

  // n tokens of random K/V [n][num_kv_heads][head_dim] in the source dtype.
  void make_tokens(int layer, int n, std::vector<std::byte>& k, std::vector<std::byte>& v) {
    const int H = config.num_kv_heads, d = config.head_dim;
    const size_t count = size_t(n) * H * d;
    std::vector<float> kf(count), vf(count);
    for (int t = 0; t < n; ++t)
      for (int h = 0; h < H; ++h) {
        const auto thr = cpu->thresholds(layer, h);
        for (int i = 0; i < d; ++i) {
          const size_t at = (size_t(t) * H + h) * d + i;
          float kx = rng.normal(), vx = rng.normal();
          const uint64_t pick = rng.next() % 64;
          if (pick < 3)
            kx = thr[rng.next() % thr.size()];  // ties with a threshold
          else if (pick == 3)
            kx *= 1e-5f;  // f16 subnormal
          else if (pick == 4)
            kx = 0.0f;
          if (value_specials) {
            const uint64_t vpick = rng.next() % 128;
            if (vpick == 0)
              vx *= 1e-6f;  // f16 subnormal
            else if (vpick == 1)
              vx = 70000.0f;  // f16 overflow → inf
            else if (vpick == 2)
              vx = -65519.0f;  // rounds to -65504 in f16
            else if (vpick == 3)
              vx = 1.0f + 1.0f / 2048.0f;  // f16 tie: to even (1.0)
            else if (vpick == 4)
              vx = 1.0f + 3.0f / 2048.0f;  // f16 tie: to even (up)
            else if (vpick == 5)
              vx = 1.0f + 1.0f / 256.0f;  // bf16 tie
          }
          kf[at] = kx;
          vf[at] = vx;
        }
      }
    k.resize(count * dtype_size(src));
    v.resize(count * dtype_size(src));
    convert_from_f32(kf.data(), k.data(), src, count);
    convert_from_f32(vf.data(), v.data(), src, count);
  }

  // Appends n random tokens to sequence s of `layer` in both caches.
  void append(int layer, int s, int n) {
    std::vector<std::byte> k, v;
    make_tokens(layer, n, k, v);
    cpu->append(layer, cpu_seqs[s], k.data(), v.data(), src, n);
    auto kd = to_device(k), vd = to_device(v);
    gpu->append(layer, gpu_seqs[s], kd.data(), vd.data(), src, n);
    device_sync();
  }
  // One token to each of the sequences `ss` (a decode step): one launch on the GPU.
  void append_batch(int layer, const std::vector<int>& ss) {
    const int n = static_cast<int>(ss.size());
    std::vector<std::byte> k, v;
    make_tokens(layer, n, k, v);
    const size_t row = size_t(config.num_kv_heads) * config.head_dim * dtype_size(src);
    std::vector<SeqId> gs;
    for (int i = 0; i < n; ++i) {
      cpu->append(layer, cpu_seqs[ss[i]], k.data() + i * row, v.data() + i * row, src, 1);
      gs.push_back(gpu_seqs[ss[i]]);
    }
    auto kd = to_device(k), vd = to_device(v);
    gpu->append_batch(layer, gs, kd.data(), vd.data(), src);
    device_sync();
  }
  void set_thresholds(int layer, int h, const std::vector<float>& t) {
    cpu->set_thresholds(layer, h, t);
    gpu->set_thresholds(layer, h, t);
    device_sync();
  }
  // Fills sequences to `lengths` in `layer`: interleaved, random chunks of 1..max_chunk tokens
  // (prefill chunks and single tokens mixed), so the sequences' pages alternate in the pool.
  void fill(int layer, const std::vector<int>& seq_index, const std::vector<int>& lengths,
            int max_chunk = 37) {
    std::vector<int> done(seq_index.size());
    for (size_t i = 0; i < seq_index.size(); ++i)
      done[i] = cpu->length(layer, cpu_seqs[seq_index[i]]);
    bool more = true;
    while (more) {
      more = false;
      for (size_t i = 0; i < seq_index.size(); ++i) {
        if (done[i] >= lengths[i]) continue;
        const int n = std::min(lengths[i] - done[i], rng.uniform_int(1, max_chunk));
        append(layer, seq_index[i], n);
        done[i] += n;
        more = more || done[i] < lengths[i];
      }
    }
  }
  std::vector<SeqId> gpu_ids(const std::vector<int>& ss) const {
    std::vector<SeqId> out;
    for (int s : ss) out.push_back(gpu_seqs[s]);
    return out;
  }
  std::vector<SeqId> cpu_ids(const std::vector<int>& ss) const {
    std::vector<SeqId> out;
    for (int s : ss) out.push_back(cpu_seqs[s]);
    return out;
  }
};

// An adamas policy for SparseDecoder::run on `layer` (its code bits and Hadamard setting).
inline PolicyConfig adamas_policy(const cuda::DeviceLayer& layer, int budget = 256,
                                  Distance distance = Distance::kL1, bool shared = false) {
  PolicyConfig p;
  p.kind = PolicyKind::kAdamas;
  p.budget = budget;
  p.dense_layers = 0;
  p.bits = layer.bits;
  p.hadamard = layer.hadamard;
  p.distance = distance;
  p.gqa = shared ? GqaMode::kGroupShared : GqaMode::kPerQueryHead;
  return p;
}

// ---------------------------------------------------------------------------------------------
// Comparing a TwinCache's two caches (append and device-cache tests).

struct DevicePools {
  cuda::DeviceLayer layer;
  std::vector<std::byte> k, v;
  std::vector<uint64_t> codes;
};

// Downloads one layer's pools: every byte any (head, page, slot) of the layout can address.
inline DevicePools download_layer(const cuda::DeviceKVCache& gpu, int layer) {
  const CacheConfig& c = gpu.config();
  DevicePools p;
  p.layer = gpu.layer(layer);
  const cuda::DeviceLayer& L = p.layer;
  const size_t H = c.num_kv_heads, N = c.num_pages;
  const size_t page_bytes = size_t(c.page_size) * c.head_dim * dtype_size(c.dtype);
  const size_t kv_bytes = (H - 1) * L.kv_head_stride + (N - 1) * L.kv_page_stride + page_bytes;
  const size_t code_words = (H - 1) * L.code_head_stride + (N - 1) * L.code_page_stride +
                            size_t(c.codes.bits) * L.words() * L.slot_stride();
  p.k = download_array(L.k_pool, kv_bytes);
  p.v = download_array(L.v_pool, kv_bytes);
  p.codes = download_array(L.code_pool, code_words);
  return p;
}

inline std::string row_diff(const std::byte* got, const std::byte* want, DType t, int d) {
  for (int i = 0; i < d; ++i)
    if (std::memcmp(got + i * dtype_size(t), want + i * dtype_size(t), dtype_size(t)) != 0) {
      std::ostringstream s;
      s << "element " << i << ": device " << stored_float(got, t, i) << ", cpu "
        << stored_float(want, t, i);
      return s.str();
    }
  return "";
}

// Lengths, page tables, free pages, and every stored byte and code word of `seqs` in every layer.
inline void expect_same_contents(const TwinCache& tc, const std::vector<int>& seqs) {
  const CacheConfig& c = tc.config;
  const int H = c.num_kv_heads, d = c.head_dim, P = c.page_size;
  const size_t row = size_t(d) * dtype_size(c.dtype);
  CodeSpec spec = c.codes;
  spec.head_dim = d;
  const int words = spec.words(), slot_stride = code_slot_stride(P);
  ASSERT_EQ(tc.gpu->free_pages(), tc.cpu->free_pages());
  // Page ids of live sequences: distinct and in range.
  std::set<int32_t> seen;
  for (int s : seqs) {
    const auto pt = tc.gpu->page_table(tc.gpu_seqs[s]);
    ASSERT_EQ(pt.size(), tc.cpu->page_table(tc.cpu_seqs[s]).size()) << "sequence " << s;
    for (int32_t p : pt) {
      ASSERT_GE(p, 0);
      ASSERT_LT(p, c.num_pages);
      ASSERT_TRUE(seen.insert(p).second) << "page " << p << " owned twice";
    }
  }
  for (int l = 0; l < c.num_layers; ++l) {
    const DevicePools pools = download_layer(*tc.gpu, l);
    const cuda::DeviceLayer& L = pools.layer;
    for (int s : seqs) {
      const int len = tc.cpu->length(l, tc.cpu_seqs[s]);
      ASSERT_EQ(tc.gpu->length(l, tc.gpu_seqs[s]), len) << "layer " << l << " sequence " << s;
      const auto pt = tc.gpu->page_table(tc.gpu_seqs[s]);
      for (int h = 0; h < H; ++h) {
        const PagedKV kv = tc.cpu->kv(l, tc.cpu_seqs[s], h);
        const PagedCodes codes = tc.cpu->codes(l, tc.cpu_seqs[s], h);
        for (int t = 0; t < len; ++t) {
          SCOPED_TRACE("layer " + std::to_string(l) + " sequence " + std::to_string(s) +
                       " kv head " + std::to_string(h) + " token " + std::to_string(t) + " of " +
                       std::to_string(len));
          const size_t off =
              h * L.kv_head_stride + size_t(pt[t / P]) * L.kv_page_stride + (t % P) * row;
          ASSERT_EQ(row_diff(pools.k.data() + off, kv.key(t), c.dtype, d), "") << "key";
          ASSERT_EQ(row_diff(pools.v.data() + off, kv.value(t), c.dtype, d), "") << "value";
          const uint64_t* cpu_page = codes.page(t / P);
          const uint64_t* gpu_page =
              pools.codes.data() + h * L.code_head_stride + size_t(pt[t / P]) * L.code_page_stride;
          for (int p = 0; p < spec.bits; ++p)
            for (int w = 0; w < words; ++w) {
              const size_t at = (size_t(p) * words + w) * slot_stride + t % P;
              ASSERT_EQ(gpu_page[at], cpu_page[at]) << "code word of plane " << p << " word " << w;
            }
        }
      }
    }
  }
}

// Pages a set of sequences needs, plus spare.
inline int pages_needed(const CacheConfig& c, const std::vector<int>& lengths, int spare = 2) {
  int p = spare;
  for (int len : lengths) p += c.pages_for(len);
  return p;
}

}  // namespace adamas::test
