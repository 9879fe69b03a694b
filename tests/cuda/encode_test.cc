// kernels.h append_kv / encode_stored_keys / encode_queries on hand-built layers, compared bit for
// bit with the CPU: K/V rounded to the cache dtype as the CPU cache stores them (convert_to_f32
// then convert_from_f32, or a copy when the dtypes agree), key codes equal to adamas::encode_keys
// of the stored key with its head's thresholds, query codes equal to adamas::encode_query with the
// thresholds of KV head h / group. Pools hold garbage: everything outside the given slots must be
// left exactly as it was.
#include "cuda_test_util.h"

namespace adamas::test {
namespace {

class CudaEncode : public CudaTest {};

constexpr int kDims[] = {16, 32, 64, 128, 256};
constexpr int kPages[] = {5, 16, 64, 1, 13};

// What the CPU cache stores for one row of `src` data (PagedKVCache::append's rule).
void store_row(const std::byte* from, DType src, std::byte* to, DType dst, int d) {
  if (src == dst) {
    std::memcpy(to, from, size_t(d) * dtype_size(dst));
    return;
  }
  std::vector<float> tmp(d);
  convert_to_f32(from, src, tmp.data(), d);
  convert_from_f32(tmp.data(), to, dst, d);
}

// First differing element of two pools, described, or "" when equal.
template <class T>
std::string first_difference(const std::vector<T>& got, const std::vector<T>& want,
                             const char* what) {
  if (got.size() != want.size()) return std::string(what) + ": sizes differ";
  for (size_t i = 0; i < got.size(); ++i)
    if (got[i] != want[i]) {
      std::ostringstream s;
      s << what << " differs at element " << i << " (got " << static_cast<uint64_t>(got[i])
        << ", want " << static_cast<uint64_t>(want[i]) << ")";
      return s.str();
    }
  return "";
}

struct SlotWrite {
  std::vector<int32_t> slots;
  std::vector<std::byte> k, v;  // [n][H][d] of src
};

// n distinct random global slots of the pool, and random K/V with threshold ties and rounding
// edge cases.
SlotWrite make_writes(FastRng& r, const TestLayer& t, int n, DType src) {
  const int H = t.shape.kv_heads, d = t.d(), P = t.shape.page_size;
  SlotWrite w;
  std::vector<int32_t> all(size_t(t.num_pages) * P);
  for (size_t i = 0; i < all.size(); ++i) all[i] = static_cast<int32_t>(i);
  if (static_cast<size_t>(n) > all.size())
    throw std::logic_error("test bug: more writes than slots");
  for (int i = 0; i < n; ++i) {
    std::swap(all[i], all[i + r.next() % (all.size() - i)]);
    w.slots.push_back(all[i]);
  }
  std::vector<float> kf(size_t(n) * H * d), vf(kf.size());
  for (int i = 0; i < n; ++i)
    for (int h = 0; h < H; ++h)
      for (int e = 0; e < d; ++e) {
        const size_t at = (size_t(i) * H + h) * d + e;
        float kx = r.normal(), vx = r.normal();
        const uint64_t pick = r.next() % 32;
        if (pick < 3)
          kx = t.thresholds[h][r.next() % t.thresholds[h].size()];
        else if (pick == 3)
          kx *= 1e-5f;
        else if (pick == 4)
          vx = 1.0f + 1.0f / 2048.0f;
        else if (pick == 5)
          vx = 70000.0f;
        else if (pick == 6)
          vx *= 1e-6f;
        kf[at] = kx;
        vf[at] = vx;
      }
  w.k.resize(kf.size() * dtype_size(src));
  w.v.resize(vf.size() * dtype_size(src));
  convert_from_f32(kf.data(), w.k.data(), src, kf.size());
  convert_from_f32(vf.data(), w.v.data(), src, vf.size());
  return w;
}

// Applies the writes to host pools the CPU way (K/V and codes).
void apply_writes(TestLayer& t, const SlotWrite& w, DType src) {
  const int H = t.shape.kv_heads, d = t.d(), P = t.shape.page_size;
  const CodeSpec spec = t.spec();
  const size_t src_row = size_t(d) * dtype_size(src);
  for (size_t i = 0; i < w.slots.size(); ++i)
    for (int h = 0; h < H; ++h) {
      const int32_t page = w.slots[i] / P;
      const int slot = w.slots[i] % P;
      const size_t off = t.kv_offset(h, page, slot);
      const size_t from = (i * H + h) * src_row;
      store_row(w.k.data() + from, src, t.k_host.data() + off, t.shape.dtype, d);
      store_row(w.v.data() + from, src, t.v_host.data() + off, t.shape.dtype, d);
      encode_keys(spec, t.thresholds[h], t.k_host.data() + off, t.shape.dtype, 1, d,
                  t.codes_host.data() + t.code_page_offset(h, page), code_slot_stride(P), slot);
    }
}

void expect_pools(const TestLayer& t) {
  const auto k = download_array(t.k_dev.data(), t.kv_pool_bytes());
  const auto v = download_array(t.v_dev.data(), t.kv_pool_bytes());
  const auto c = download_array(t.codes_dev.data(), t.code_pool_words());
  EXPECT_EQ(first_difference(k, t.k_host, "K pool"), "");
  EXPECT_EQ(first_difference(v, t.v_host, "V pool"), "");
  EXPECT_EQ(first_difference(c, t.codes_host, "code pool"), "");
}

// append_kv writes exactly the given slots (scattered over pages and heads, several launches on
// one layer), every src dtype into every cache dtype, and nothing else; encode_stored_keys with
// new thresholds then re-encodes exactly those slots.
TEST_F(CudaEncode, AppendKvAndReencodeMatchCpuBitForBit) {
  int index = 0;
  for (DType cache : {DType::kF16, DType::kBF16})
    for (DType src : {DType::kF32, DType::kF16, DType::kBF16})
      for (int d : kDims) {
        ++index;
        LayerShape shape;
        shape.dtype = cache;
        shape.head_dim = d;
        shape.kv_heads = 1 + index % 4;
        shape.page_size = kPages[index % 5];
        shape.bits = 1 + index % 3;
        shape.hadamard = index % 2 == 0;
        SCOPED_TRACE(shape.name() + " src " + dtype_str(src));
        TestLayer t = make_test_layer(shape, {200, 3}, 100 + index);  // pools full of garbage
        FastRng r(200 + index);
        // Three launches of different sizes (decode-sized, prefill-sized).
        std::vector<int32_t> written;
        for (int n : {1, 3 + index % 5, 70}) {
          SlotWrite w = make_writes(r, t, n, src);
          auto slots = to_device(w.slots);
          auto k = to_device(w.k), v = to_device(w.v);
          cuda::append_kv(t.layer(), slots.data(), n, k.data(), v.data(), src, nullptr);
          device_sync();
          apply_writes(t, w, src);
          written.insert(written.end(), w.slots.begin(), w.slots.end());
        }
        expect_pools(t);
        // New thresholds, then re-encode a subset of the written slots only.
        std::vector<std::vector<float>> thr;
        for (int h = 0; h < shape.kv_heads; ++h)
          thr.push_back(random_thresholds(r, shape.bits, h % 2 == 1));
        t.set_thresholds(thr);
        // Distinct slots (a slot may have been written by two launches), a subset of them.
        std::sort(written.begin(), written.end());
        written.erase(std::unique(written.begin(), written.end()), written.end());
        for (size_t i = written.size(); i > 1; --i)
          std::swap(written[i - 1], written[r.next() % i]);
        written.resize(written.size() / 2 + 1);
        auto slots = to_device(written);
        cuda::encode_stored_keys(t.layer(), slots.data(), static_cast<int>(written.size()),
                                 nullptr);
        device_sync();
        const int P = shape.page_size;
        for (int32_t s : written)
          for (int h = 0; h < shape.kv_heads; ++h)
            encode_keys(t.spec(), thr[h], t.k_host.data() + t.kv_offset(h, s / P, s % P), cache, 1,
                        d, t.codes_host.data() + t.code_page_offset(h, s / P), code_slot_stride(P),
                        s % P);
        expect_pools(t);
        if (HasFatalFailure()) return;
      }
}

// One launch of thousands of tokens (a long prefill chunk) into consecutive slots.
TEST_F(CudaEncode, LongPrefillChunk) {
  for (int bits : {1, 2, 3}) {
    LayerShape shape;
    shape.head_dim = 128;
    shape.kv_heads = 2;
    shape.page_size = 64;
    shape.bits = bits;
    shape.hadamard = bits != 1;
    shape.dtype = bits == 2 ? DType::kBF16 : DType::kF16;
    SCOPED_TRACE(shape.name());
    TestLayer t = make_test_layer(shape, {5000}, 300 + bits);
    FastRng r(310 + bits);
    SlotWrite w = make_writes(r, t, 4999, DType::kF32);
    // Consecutive slots from a page start, like a prefill into a fresh sequence.
    const int P = shape.page_size;
    for (int i = 0; i < 4999; ++i) w.slots[i] = t.pages[0][i / P] * P + i % P;
    auto slots = to_device(w.slots);
    auto k = to_device(w.k), v = to_device(w.v);
    cuda::append_kv(t.layer(), slots.data(), 4999, k.data(), v.data(), DType::kF32, nullptr);
    device_sync();
    apply_writes(t, w, DType::kF32);
    expect_pools(t);
  }
}

// encode_queries == encode_query with the thresholds of KV head qh / group, for every query head
// of several rows; GQA groups 1, 2, 4, 8 and 3; only the planes in use are compared (bits, words
// and 2^bits − 1 planes of `words` words).
TEST_F(CudaEncode, EncodeQueriesMatchesCpu) {
  int index = 0;
  for (int d : kDims)
    for (int group : {1, 2, 4, 8, 3})
      for (int bits : {1, 2, 3}) {
        ++index;
        LayerShape shape;
        shape.head_dim = d;
        shape.kv_heads = group == 3 ? 2 : 1 + index % 3;
        shape.bits = bits;
        shape.hadamard = index % 2 == 1;
        shape.page_size = 16;
        LayerContent content;
        content.kv = false;
        content.codes = false;
        TestLayer t = make_test_layer(shape, {1}, 400 + index, content);
        const int nqh = shape.kv_heads * group, rows = 1 + index % 5;
        SCOPED_TRACE(shape.name() + " group " + std::to_string(group) + " rows " +
                     std::to_string(rows));
        FastRng r(500 + index);
        std::vector<float> q(size_t(rows) * nqh * d);
        for (size_t i = 0; i < q.size(); ++i) {
          q[i] = r.normal(1.2f);
          const int qh = static_cast<int>(i / d) % nqh;
          const auto& thr = t.thresholds[qh / group];
          if (r.next() % 8 == 0) q[i] = thr[r.next() % thr.size()];  // exact ties
        }
        auto q_dev = to_device(q);
        DeviceBuffer<QueryCode> out(size_t(rows) * nqh);
        out.fill_bytes(0xff);
        cuda::encode_queries(t.layer(), q_dev.data(), rows, nqh, out.data(), nullptr);
        const auto got = download_array(out.data(), size_t(rows) * nqh);
        const CodeSpec spec = t.spec();
        for (int row = 0; row < rows; ++row)
          for (int qh = 0; qh < nqh; ++qh) {
            const QueryCode want = encode_query(spec, t.thresholds[qh / group],
                                                q.data() + (size_t(row) * nqh + qh) * d);
            const QueryCode& g = got[size_t(row) * nqh + qh];
            ASSERT_EQ(g.bits, want.bits) << "row " << row << " q head " << qh;
            ASSERT_EQ(g.words, want.words) << "row " << row << " q head " << qh;
            for (int p = 0; p < spec.thermo_planes() * spec.words(); ++p)
              ASSERT_EQ(g.planes[p], want.planes[p])
                  << "row " << row << " q head " << qh << " plane word " << p;
          }
      }
}

}  // namespace
}  // namespace adamas::test
