// paged_decode.h: the decode ops over caller-owned pools (what the PyTorch CPU ops run) against
// DecodeAttention on the same bytes: outputs bit for bit, selections row for row, appends byte
// for byte; select + sparse attention = decode; errors name the field.
#include "adamas/decode/paged_decode.h"

#include "adamas/decode/decode_attention.h"
#include "test_util.h"

namespace adamas::test {
namespace {

using ::testing::ThrowsMessage;

// A PagedLayer over layer `layer` of a PagedKVCache: the cache's own pools, read through the
// views it hands out (base pointers, page and head strides).
struct CacheLayer {
  PagedLayer layer;
  std::vector<float> thresholds;  // [num_kv_heads][kMaxThermoPlanes]
};

CacheLayer over_cache(const PagedKVCache& cache, int layer, SeqId seq) {
  const CacheConfig& c = cache.config();
  CacheLayer out;
  const PagedKV kv0 = cache.kv(layer, seq, 0);
  PagedLayer& l = out.layer;
  l.k_pool = const_cast<std::byte*>(kv0.k_pool);
  l.v_pool = const_cast<std::byte*>(kv0.v_pool);
  l.kv_page_stride = kv0.page_stride;
  l.kv_head_stride = c.num_kv_heads > 1 ? cache.kv(layer, seq, 1).head_offset : 0;
  if (c.store_codes) {
    const PagedCodes c0 = cache.codes(layer, seq, 0);
    l.code_pool = const_cast<uint64_t*>(c0.pool);
    l.code_page_stride = c0.page_stride;
    l.code_head_stride = c.num_kv_heads > 1 ? cache.codes(layer, seq, 1).head_offset : 0;
    out.thresholds.assign(static_cast<size_t>(c.num_kv_heads) * kMaxThermoPlanes, 0.f);
    for (int h = 0; h < c.num_kv_heads; ++h) {
      const auto t = cache.thresholds(layer, h);
      std::copy(t.begin(), t.end(), out.thresholds.begin() + h * kMaxThermoPlanes);
    }
    l.thresholds = out.thresholds.data();
  }
  l.num_kv_heads = c.num_kv_heads;
  l.head_dim = c.head_dim;
  l.page_size = c.page_size;
  l.num_pages = c.num_pages;
  l.dtype = c.dtype;
  l.bits = c.codes.bits;
  l.hadamard = c.codes.hadamard;
  return out;
}

struct Case {
  std::string policy;
  int head_dim, page_size, kv_heads, q_heads;
  DType dtype;
  std::vector<int> lengths;
};

PolicyConfig policy_of(const std::string& spec) {
  PolicyConfig p = parse_policy(spec);
  p.dense_layers = 0;  // the paged ops leave dense_layers to the caller
  if (p.kind == PolicyKind::kAdamas && p.bits == 2) p.thresholds = {-0.7f, 0.f, 0.7f};
  return p;
}

std::vector<Case> cases() {
  return {
      {"adamas:budget=8", 64, 16, 2, 2, DType::kF16, {1, 37, 100, 16}},
      {"adamas:budget=8,gqa=shared", 64, 13, 2, 8, DType::kBF16, {5, 40, 129}},
      {"adamas:budget=32", 128, 16, 2, 8, DType::kF16, {300, 31, 32, 33}},
      {"adamas:budget=1", 128, 1, 1, 4, DType::kF32, {1, 2, 9}},
      {"adamas:budget=20,dist=l2,bits=3", 64, 7, 3, 3, DType::kF16, {50, 19, 21}},
      {"adamas:budget=4,bits=1,hadamard=0", 32, 8, 2, 4, DType::kBF16, {3, 4, 5, 60}},
      {"adamas:budget=100000", 64, 16, 2, 4, DType::kF16, {77, 1}},
      {"full", 64, 5, 2, 6, DType::kBF16, {1, 64, 65}},
  };
}

TEST(PagedDecode, EqualsDecodeAttentionOnTheSameCache) {
  uint32_t seed = 100;
  for (const Case& k : cases()) {
    SCOPED_TRACE(k.policy + " d=" + std::to_string(k.head_dim) +
                 " P=" + std::to_string(k.page_size));
    const PolicyConfig policy = policy_of(k.policy);
    CacheConfig cfg;
    cfg.num_layers = 2;
    cfg.num_kv_heads = k.kv_heads;
    cfg.head_dim = k.head_dim;
    cfg.page_size = k.page_size;
    cfg.dtype = k.dtype;
    configure_cache_for(policy, cfg);
    const FilledCache fc = make_filled_cache(cfg, k.lengths, ++seed);
    std::mt19937 g(++seed);
    const int B = static_cast<int>(k.lengths.size()), d = k.head_dim;
    const auto q = random_normal(g, size_t(B) * k.q_heads * d);
    const int layer = 1;

    std::vector<float> want(q.size(), NAN), got(q.size(), NAN);
    auto owned = make_policy(policy);
    DecodeAttention ref(*fc.cache, *owned, k.q_heads);
    ref.run(layer, fc.seqs, q.data(), want.data());

    const CacheLayer cl = over_cache(*fc.cache, layer, fc.seqs[0]);
    const BatchTables tables = fc.cache->page_tables().batch(fc.seqs, layer);
    paged_decode(cl.layer, tables.view(), q.data(), k.q_heads, policy, 0.f, got.data());
    for (size_t i = 0; i < q.size(); ++i) ASSERT_EQ(got[i], want[i]) << "element " << i;

    if (policy.kind != PolicyKind::kAdamas) continue;
    // The selection, row for row, and select + sparse attention = decode.
    const int rows = selection_rows(cl.layer, B, k.q_heads, policy);
    const size_t stride = std::min(policy.budget, tables.max_length);
    std::vector<int32_t> idx(rows * stride, -1), counts(rows, -1);
    paged_select(cl.layer, tables.view(), q.data(), k.q_heads, policy, idx.data(), stride,
                 counts.data());
    const bool shared = policy.gqa == GqaMode::kGroupShared;
    const int group = k.q_heads / k.kv_heads;
    for (int r = 0; r < rows; ++r) {
      const int per_seq = shared ? k.kv_heads : k.q_heads;
      const int b = r / per_seq, j = (r % per_seq) / (shared ? 1 : group);
      const int len = k.lengths[b];
      const HeadScratch& sc = ref.scratch(b, j);
      std::vector<int32_t> expect;
      if (sc.dense) {
        expect = iota_positions(len);
      } else {
        const int32_t* row = sc.row(shared ? 0 : (r % per_seq) % group, policy.budget);
        expect.assign(row, row + sc.counts[shared ? 0 : (r % per_seq) % group]);
      }
      ASSERT_EQ(
          std::vector<int32_t>(idx.begin() + r * stride, idx.begin() + r * stride + counts[r]),
          expect)
          << "row " << r;
    }
    // Equal up to fp32 summation order: decode attends densely where budget ≥ length.
    std::vector<float> attended(q.size(), NAN);
    paged_sparse_attention(cl.layer, tables.view(), q.data(), k.q_heads, idx.data(), stride,
                           counts.data(), shared, 0.f, attended.data());
    for (size_t r = 0; r < q.size() / d; ++r) {
      EXPECT_LT(rel_error(attended.data() + r * d, got.data() + r * d, d), 1e-5) << "q row " << r;
    }
  }
}

TEST(PagedDecode, DenseAttentionEqualsFullPolicy) {
  CacheConfig cfg;
  cfg.num_kv_heads = 2;
  cfg.head_dim = 64;
  cfg.page_size = 16;
  cfg.store_codes = false;
  const FilledCache fc = make_filled_cache(cfg, {1, 50, 17}, 7);
  std::mt19937 g(8);
  const auto q = random_normal(g, size_t(3) * 4 * 64);
  const CacheLayer cl = over_cache(*fc.cache, 0, fc.seqs[0]);
  const BatchTables tables = fc.cache->page_tables().batch(fc.seqs, 0);
  std::vector<float> a(q.size()), b(q.size());
  paged_dense_attention(cl.layer, tables.view(), q.data(), 4, 0.f, a.data());
  paged_decode(cl.layer, tables.view(), q.data(), 4, parse_policy("full"), 0.f, b.data());
  EXPECT_EQ(a, b);
}

TEST(PagedDecode, AppendWritesWhatTheCacheWrites) {
  for (DType dtype : {DType::kF16, DType::kBF16, DType::kF32}) {
    CacheConfig cfg;
    cfg.num_kv_heads = 3;
    cfg.head_dim = 64;
    cfg.page_size = 13;
    cfg.dtype = dtype;
    cfg.codes.thresholds = {-0.5f, 0.f, 0.5f};
    const FilledCache fc = make_filled_cache(cfg, {40, 1, 27}, 11);
    const CacheLayer cl = over_cache(*fc.cache, 0, fc.seqs[0]);

    // Fresh pools of the same layout, written by paged_append at the cache's slots.
    const PagedLayer& src = cl.layer;
    const size_t kv_bytes = src.kv_head_stride * cfg.num_kv_heads;
    const size_t code_words = src.code_head_stride * cfg.num_kv_heads;
    std::vector<std::byte> k(kv_bytes), v(kv_bytes);
    std::vector<uint64_t> codes(code_words);
    PagedLayer mine = src;
    mine.k_pool = k.data();
    mine.v_pool = v.data();
    mine.code_pool = codes.data();
    const int H = cfg.num_kv_heads, d = cfg.head_dim;
    for (size_t s = 0; s < fc.seqs.size(); ++s) {
      const int len = fc.cache->length(0, fc.seqs[s]);
      std::vector<float> kk(size_t(len) * H * d), vv(kk.size());
      std::vector<int32_t> slots(len);
      for (int t = 0; t < len; ++t) {
        slots[t] = fc.cache->page_tables().slot(fc.seqs[s], t);
        for (int h = 0; h < H; ++h) {
          std::copy_n(fc.key(0, s, h, t), d, kk.begin() + (size_t(t) * H + h) * d);
          std::copy_n(fc.values(0, s, h) + size_t(t) * d, d, vv.begin() + (size_t(t) * H + h) * d);
        }
      }
      paged_append(mine, slots.data(), len, kk.data(), vv.data(), DType::kF32);
      const BatchTables tables = fc.cache->page_tables().batch({&fc.seqs[s], 1}, 0);
      for (int h = 0; h < H; ++h) {
        const PagedKV a = fc.cache->kv(0, fc.seqs[s], h), b = mine.kv(tables.view(), 0, h);
        const PagedCodes ca = fc.cache->codes(0, fc.seqs[s], h),
                         cb = mine.codes(tables.view(), 0, h);
        for (int t = 0; t < len; ++t) {
          ASSERT_EQ(std::memcmp(a.key(t), b.key(t), d * dtype_size(dtype)), 0) << "key " << t;
          ASSERT_EQ(std::memcmp(a.value(t), b.value(t), d * dtype_size(dtype)), 0) << "value " << t;
          std::vector<uint8_t> ba(d), bb(d);
          const CodeSpec& spec = fc.cache->config().codes;
          unpack_key_buckets(spec, ca.page(t / cfg.page_size), ca.slot_stride, t % cfg.page_size,
                             ba.data());
          unpack_key_buckets(spec, cb.page(t / cfg.page_size), cb.slot_stride, t % cfg.page_size,
                             bb.data());
          ASSERT_EQ(ba, bb) << "code of token " << t << " head " << h;
        }
      }
    }
  }
}

TEST(PagedDecode, BadInputsNameTheProblem) {
  CacheConfig cfg;
  cfg.num_kv_heads = 2;
  cfg.head_dim = 64;
  cfg.page_size = 16;
  const FilledCache fc = make_filled_cache(cfg, {20}, 3);
  const CacheLayer cl = over_cache(*fc.cache, 0, fc.seqs[0]);
  BatchTables tables = fc.cache->page_tables().batch(fc.seqs, 0);
  std::vector<float> q(4 * 64), out(q.size());
  const auto decode = [&](const std::string& policy, int heads = 4) {
    paged_decode(cl.layer, tables.view(), q.data(), heads, parse_policy(policy), 0.f, out.data());
  };
  EXPECT_THAT([&] { decode("quest"); }, ThrowsMessage<Error>(HasSubstr("run `full` and `adamas`")));
  EXPECT_THAT([&] { decode("adamas:dist=ip"); }, ThrowsMessage<Error>(HasSubstr("dist=ip")));
  EXPECT_THAT([&] { decode("adamas", 3); }, ThrowsMessage<Error>(HasSubstr("num_q_heads (3)")));
  tables.page_indices[0] = 999;
  EXPECT_THAT([&] { decode("adamas"); }, ThrowsMessage<Error>(HasSubstr("page_indices[0] = 999")));
  tables.page_indices[0] = 0;
  tables.lengths[0] = 40;
  tables.max_length = 40;
  EXPECT_THAT([&] { decode("adamas"); }, ThrowsMessage<Error>(HasSubstr("has 2 pages of 16")));
  const int32_t slot = 1 << 20;
  EXPECT_THAT([&] { paged_append(cl.layer, &slot, 1, q.data(), q.data(), DType::kF32); },
              ThrowsMessage<Error>(HasSubstr("slots[0] = 1048576 is outside the pool")));
}

}  // namespace
}  // namespace adamas::test
