// paged_kv_cache.h: appends (prefill chunks, single tokens, ragged interleaved sequences, several
// layers) read back through the views; codes and min/max as documented; page ownership and reuse;
// full-pool errors that leave the sequence unchanged; set_thresholds; config errors.
#include "adamas/cache/paged_kv_cache.h"

#include <set>

#include "adamas/core/hadamard.h"
#include "test_util.h"

namespace adamas::test {
namespace {

std::vector<float> read_row(const std::byte* row, DType t, int d) {
  std::vector<float> x(d);
  convert_to_f32(row, t, x.data(), d);
  return x;
}

// Every stored key and value of every (layer, sequence, head) equals what was appended, after
// rounding to the cache dtype (compared bit for bit).
void expect_contents(const FilledCache& fc, const std::vector<int>& lengths) {
  const CacheConfig c = fc.config();
  for (int l = 0; l < c.num_layers; ++l)
    for (size_t s = 0; s < lengths.size(); ++s)
      for (int h = 0; h < c.num_kv_heads; ++h) {
        const PagedKV kv = fc.cache->kv(l, fc.seqs[s], h);
        ASSERT_EQ(kv.length, lengths[s]);
        ASSERT_EQ(kv.head_dim, c.head_dim);
        ASSERT_EQ(kv.page_size, c.page_size);
        ASSERT_EQ(kv.dtype, c.dtype);
        for (int t = 0; t < lengths[s]; ++t) {
          const auto k = read_row(kv.key(t), c.dtype, c.head_dim);
          const auto v = read_row(kv.value(t), c.dtype, c.head_dim);
          for (int i = 0; i < c.head_dim; ++i) {
            ASSERT_EQ(std::bit_cast<uint32_t>(k[i]),
                      std::bit_cast<uint32_t>(fc.k[l][s][h][size_t(t) * c.head_dim + i]))
                << "key: layer " << l << " seq " << s << " head " << h << " t " << t << " i " << i;
            ASSERT_EQ(std::bit_cast<uint32_t>(v[i]),
                      std::bit_cast<uint32_t>(fc.v[l][s][h][size_t(t) * c.head_dim + i]))
                << "value: layer " << l << " seq " << s << " head " << h << " t " << t;
          }
        }
      }
}

// Codes: unpack == compute_buckets of the stored key with the head's thresholds, and the words
// equal encode_keys of the stored key; min/max equal the channel min/max of each page's keys.
void expect_codes_and_minmax(const FilledCache& fc, const std::vector<int>& lengths) {
  const CacheConfig c = fc.config();
  const int d = c.head_dim, P = c.page_size;
  CodeSpec spec = c.codes;
  spec.head_dim = d;
  for (int l = 0; l < c.num_layers; ++l)
    for (size_t s = 0; s < lengths.size(); ++s)
      for (int h = 0; h < c.num_kv_heads; ++h) {
        const auto t_span = fc.cache->thresholds(l, h);
        const std::vector<float> thr(t_span.begin(), t_span.end());
        const PagedCodes codes = fc.cache->codes(l, fc.seqs[s], h);
        ASSERT_EQ(codes.length, lengths[s]);
        ASSERT_EQ(codes.slot_stride, code_slot_stride(P));
        const PagedMinMax mm = fc.cache->minmax(l, fc.seqs[s], h);
        const int words = spec.words();
        std::vector<uint64_t> scratch(code_page_words(spec, P));
        for (int t = 0; t < lengths[s]; ++t) {
          const float* key = fc.key(l, s, h, t);
          std::vector<uint8_t> want(d), got(d);
          compute_buckets(spec, thr, key, want.data());
          const uint64_t* page = codes.page(t / P);
          unpack_key_buckets(spec, page, codes.slot_stride, t % P, got.data());
          ASSERT_EQ(got, want) << "layer " << l << " seq " << s << " head " << h << " t " << t;
          encode_keys(spec, thr, key, DType::kF32, 1, d, scratch.data(), codes.slot_stride, t % P);
          for (int p = 0; p < spec.bits; ++p)
            for (int w = 0; w < words; ++w) {
              const size_t at = (size_t(p) * words + w) * codes.slot_stride + t % P;
              ASSERT_EQ(page[at], scratch[at]) << "code word, t " << t;
            }
        }
        for (int pi = 0; pi * P < lengths[s]; ++pi) {
          for (int i = 0; i < d; ++i) {
            float lo = INFINITY, hi = -INFINITY;
            for (int t = pi * P; t < std::min(lengths[s], (pi + 1) * P); ++t) {
              lo = std::min(lo, fc.key(l, s, h, t)[i]);
              hi = std::max(hi, fc.key(l, s, h, t)[i]);
            }
            ASSERT_EQ(mm.page_min(pi)[i], lo) << "layer " << l << " page " << pi << " dim " << i;
            ASSERT_EQ(mm.page_max(pi)[i], hi) << "layer " << l << " page " << pi << " dim " << i;
          }
        }
      }
}

void expect_disjoint_page_tables(const PagedKVCache& cache, const std::vector<SeqId>& seqs,
                                 const std::vector<int>& max_lengths) {
  std::set<int32_t> seen;
  size_t total = 0;
  for (size_t s = 0; s < seqs.size(); ++s) {
    const auto pt = cache.page_table(seqs[s]);
    EXPECT_EQ(static_cast<int>(pt.size()), cache.config().pages_for(max_lengths[s])) << "seq " << s;
    for (int32_t p : pt) {
      EXPECT_GE(p, 0);
      EXPECT_LT(p, cache.config().num_pages);
      EXPECT_TRUE(seen.insert(p).second) << "page " << p << " shared (seq " << s << ")";
    }
    total += pt.size();
  }
  EXPECT_EQ(cache.free_pages(), cache.config().num_pages - static_cast<int>(total));
}

// Chunks of up to 20 tokens (single tokens and small prefills) and of up to 150 (large prefill
// chunks, which the cache converts and encodes with the heads in parallel).
TEST(PagedKVCache, RaggedInterleavedAppendsReadBack) {
  for (int max_chunk : {20, 150})
    for (DType dt : {DType::kF32, DType::kF16, DType::kBF16}) {
      for (int P : {1, 7, 16}) {
        SCOPED_TRACE(std::string(dtype_str(dt)) + " page " + std::to_string(P) + " chunks ≤ " +
                     std::to_string(max_chunk));
        CacheConfig cfg = small_cache_config(32, P, dt, /*kv_heads=*/3, /*layers=*/2);
        const std::vector<int> lengths = {1, 50, 17, 330, 0, 200};
        const FilledCache fc =
            make_filled_cache(cfg, lengths, 100 + P + max_chunk, 12.0f, max_chunk);
        expect_contents(fc, lengths);
        expect_codes_and_minmax(fc, lengths);
        expect_disjoint_page_tables(*fc.cache, fc.seqs, lengths);
        for (size_t s = 0; s < lengths.size(); ++s)
          for (int l = 0; l < 2; ++l) EXPECT_EQ(fc.cache->length(l, fc.seqs[s]), lengths[s]);
      }
    }
}

// truncate: the kept prefix reads back with its codes and exact min/max (the last page's are
// recomputed), pages past it are freed, and appends continue from the new end.
TEST(PagedKVCache, TruncateKeepsPrefixFreesPagesAndAllowsAppends) {
  for (int P : {1, 7, 16}) {
    SCOPED_TRACE("page " + std::to_string(P));
    CacheConfig cfg = small_cache_config(32, P, DType::kF16, /*kv_heads=*/2, /*layers=*/2);
    const FilledCache fc = make_filled_cache(cfg, {100, 37}, 500 + P, 12.0f);
    const int free_before = fc.cache->free_pages();
    fc.cache->truncate(fc.seqs[0], 45);
    const std::vector<int> lengths = {45, 37};
    expect_contents(fc, lengths);
    expect_codes_and_minmax(fc, lengths);
    expect_disjoint_page_tables(*fc.cache, fc.seqs, lengths);
    EXPECT_EQ(fc.cache->free_pages(), free_before + cfg.pages_for(100) - cfg.pages_for(45));
    fc.cache->truncate(fc.seqs[1], 80);  // longer than the sequence: unchanged
    EXPECT_EQ(fc.cache->length(0, fc.seqs[1]), 37);
    // Appending after a truncate continues at position 45 in each layer.
    std::vector<float> k(3 * 2 * 32, 1.5f), v(k.size(), -2.0f);
    for (int l = 0; l < 2; ++l) fc.cache->append(l, fc.seqs[0], k.data(), v.data(), 3);
    const PagedKV kv = fc.cache->kv(1, fc.seqs[0], 1);
    ASSERT_EQ(kv.length, 48);
    EXPECT_EQ(f16_to_f32(reinterpret_cast<const uint16_t*>(kv.key(46))[5]), 1.5f);
    EXPECT_EQ(f16_to_f32(reinterpret_cast<const uint16_t*>(kv.value(47))[0]), -2.0f);
    EXPECT_THROW(fc.cache->truncate(fc.seqs[0], -1), Error);
  }
}

TEST(PagedKVCache, CodesAndMinMaxForEveryCodeConfiguration) {
  for (int bits = 1; bits <= 3; ++bits)
    for (bool hadamard : {true, false})
      for (int d : {16, 64, 256}) {
        SCOPED_TRACE("bits " + std::to_string(bits) + (hadamard ? " hadamard" : " raw") + " d " +
                     std::to_string(d));
        CacheConfig cfg = small_cache_config(d, 16, DType::kBF16, 2);
        cfg.codes.bits = bits;
        cfg.codes.hadamard = hadamard;
        const std::vector<int> lengths = {40, 3};
        const FilledCache fc = make_filled_cache(cfg, lengths, 200 + d + bits, 10.0f);
        expect_codes_and_minmax(fc, lengths);
      }
}

// Prefill in one chunk, then single tokens: same contents as token by token.
TEST(PagedKVCache, PrefillChunkThenSingleTokens) {
  CacheConfig cfg = small_cache_config(64, 16, DType::kF16, 2);
  cfg.num_pages = 8;
  PagedKVCache a(cfg), b(cfg);
  const SeqId sa = a.add_sequence(), sb = b.add_sequence();
  std::mt19937 g(3);
  const int n = 45;
  const auto k = random_normal(g, size_t(n) * 2 * 64), v = random_normal(g, size_t(n) * 2 * 64);
  a.append(0, sa, k.data(), v.data(), 40);
  for (int t = 40; t < n; ++t) a.append(0, sa, k.data() + t * 128, v.data() + t * 128, 1);
  for (int t = 0; t < n; ++t) b.append(0, sb, k.data() + t * 128, v.data() + t * 128, 1);
  EXPECT_EQ(a.length(0, sa), n);
  for (int h = 0; h < 2; ++h) {
    const PagedKV ka = a.kv(0, sa, h), kb = b.kv(0, sb, h);
    for (int t = 0; t < n; ++t) {
      ASSERT_EQ(std::memcmp(ka.key(t), kb.key(t), 64 * 2), 0) << t;
      ASSERT_EQ(std::memcmp(ka.value(t), kb.value(t), 64 * 2), 0) << t;
      // and equal to the source rounded to f16
      for (int i = 0; i < 64; ++i)
        ASSERT_EQ(reinterpret_cast<const uint16_t*>(ka.key(t))[i],
                  f32_to_f16(k[(size_t(t) * 2 + h) * 64 + i]));
    }
  }
  EXPECT_EQ(a.page_table(sa).size(), 3u);
  EXPECT_EQ(a.free_pages(), 5);
}

// Appending K/V given as f16 or bf16 into caches of every dtype converts exactly.
TEST(PagedKVCache, AppendFromHalfPrecisionSources) {
  std::mt19937 g(4);
  const int n = 9, d = 32;
  const auto src = random_normal(g, size_t(n) * d, 3.0f);
  for (DType from : {DType::kF16, DType::kBF16, DType::kF32})
    for (DType to : {DType::kF32, DType::kF16, DType::kBF16}) {
      SCOPED_TRACE(std::string(dtype_str(from)) + " -> " + dtype_str(to));
      CacheConfig cfg = small_cache_config(d, 4, to);
      cfg.num_pages = 4;
      PagedKVCache c(cfg);
      const SeqId s = c.add_sequence();
      std::vector<std::byte> buf(src.size() * dtype_size(from));
      convert_from_f32(src.data(), buf.data(), from, src.size());
      c.append(0, s, buf.data(), buf.data(), from, n);
      std::vector<float> as_from(src.size());
      convert_to_f32(buf.data(), from, as_from.data(), src.size());
      const PagedKV kv = c.kv(0, s, 0);
      for (int t = 0; t < n; ++t) {
        const auto k = read_row(kv.key(t), to, d);
        for (int i = 0; i < d; ++i) ASSERT_EQ(k[i], round_to(to, as_from[size_t(t) * d + i]));
      }
    }
}

TEST(PagedKVCache, RemoveSequenceFreesPagesForReuse) {
  CacheConfig cfg = small_cache_config(16, 4, DType::kF32);
  cfg.num_pages = 10;
  PagedKVCache c(cfg);
  const SeqId a = c.add_sequence(), b = c.add_sequence();
  std::vector<float> kv(40 * 16, 1.0f);
  c.append(0, a, kv.data(), kv.data(), 17);  // 5 pages
  c.append(0, b, kv.data(), kv.data(), 8);   // 2 pages
  EXPECT_EQ(c.free_pages(), 3);
  const std::vector<int32_t> a_pages(c.page_table(a).begin(), c.page_table(a).end());
  c.remove_sequence(a);
  EXPECT_EQ(c.free_pages(), 8);
  EXPECT_THAT(error_message([&] { c.length(0, a); }),
              AllOf(HasSubstr("removed sequence"), HasSubstr(std::to_string(a))));
  EXPECT_THAT(error_message([&] { c.kv(0, a, 0); }), HasSubstr("removed sequence"));
  EXPECT_THAT(error_message([&] { c.append(0, a, kv.data(), kv.data(), 1); }),
              HasSubstr("removed sequence"));
  EXPECT_THAT(error_message([&] { c.remove_sequence(a); }), HasSubstr("removed sequence"));
  const SeqId n = c.add_sequence();
  EXPECT_NE(n, a) << "sequence ids are not reused";
  c.append(0, n, kv.data(), kv.data(), 32);  // 8 pages: needs every freed page
  EXPECT_EQ(c.free_pages(), 0);
  const auto pn = c.page_table(n);
  for (int32_t p : a_pages)
    EXPECT_NE(std::find(pn.begin(), pn.end(), p), pn.end()) << "freed page " << p << " not reused";
  expect_disjoint_page_tables(c, {b, n}, {8, 32});
}

// Pages reused after a removal start with fresh min/max (not the removed sequence's) and the new
// sequence's codes and values are its own.
TEST(PagedKVCache, ReusedPagesHoldOnlyTheNewSequence) {
  CacheConfig cfg = small_cache_config(32, 8, DType::kF32, 2, 2);
  cfg.num_pages = 6;
  PagedKVCache c(cfg);
  std::mt19937 g(5);
  const SeqId a = c.add_sequence();
  const auto big = random_normal(g, 48 * 2 * 32, 100.0f);
  c.append(0, a, big.data(), big.data(), 48);
  c.append(1, a, big.data(), big.data(), 48);
  c.remove_sequence(a);
  const SeqId b = c.add_sequence();
  const auto k = random_normal(g, 20 * 2 * 32, 1.0f), v = random_normal(g, 20 * 2 * 32, 1.0f);
  c.append(0, b, k.data(), v.data(), 20);
  c.append(1, b, k.data(), v.data(), 5);
  for (int l = 0; l < 2; ++l) {
    const int len = l == 0 ? 20 : 5;
    for (int h = 0; h < 2; ++h) {
      const PagedMinMax mm = c.minmax(l, b, h);
      for (int pi = 0; pi * 8 < len; ++pi)
        for (int i = 0; i < 32; ++i) {
          float lo = INFINITY, hi = -INFINITY;
          for (int t = pi * 8; t < std::min(len, pi * 8 + 8); ++t) {
            lo = std::min(lo, k[(size_t(t) * 2 + h) * 32 + i]);
            hi = std::max(hi, k[(size_t(t) * 2 + h) * 32 + i]);
          }
          ASSERT_EQ(mm.page_min(pi)[i], lo) << "layer " << l << " page " << pi;
          ASSERT_EQ(mm.page_max(pi)[i], hi) << "layer " << l << " page " << pi;
        }
    }
  }
}

TEST(PagedKVCache, FullCacheThrowsAndLeavesSequenceUnchanged) {
  CacheConfig cfg = small_cache_config(16, 4, DType::kF16, 1, 2);
  cfg.num_pages = 5;
  PagedKVCache c(cfg);
  const SeqId a = c.add_sequence(), b = c.add_sequence();
  std::mt19937 g(6);
  const auto kv = random_normal(g, 40 * 16);
  c.append(0, a, kv.data(), kv.data(), 10);  // 3 pages
  c.append(0, b, kv.data(), kv.data(), 6);   // 2 pages: pool exhausted
  EXPECT_EQ(c.free_pages(), 0);
  const std::vector<int32_t> pt(c.page_table(a).begin(), c.page_table(a).end());
  std::vector<uint16_t> before(10 * 16);
  for (int t = 0; t < 10; ++t) std::memcpy(before.data() + t * 16, c.kv(0, a, 0).key(t), 32);
  EXPECT_THAT(error_message([&] { c.append(0, a, kv.data(), kv.data(), 3); }), HasSubstr("full"));
  EXPECT_EQ(c.length(0, a), 10);
  EXPECT_EQ(c.length(1, a), 0);
  EXPECT_EQ(std::vector<int32_t>(c.page_table(a).begin(), c.page_table(a).end()), pt);
  EXPECT_EQ(c.free_pages(), 0);
  for (int t = 0; t < 10; ++t)
    ASSERT_EQ(std::memcmp(before.data() + t * 16, c.kv(0, a, 0).key(t), 32), 0) << t;
  // What still fits in the last page can be appended; other layers use the same pages.
  c.append(0, a, kv.data(), kv.data(), 2);
  EXPECT_EQ(c.length(0, a), 12);
  c.append(1, a, kv.data(), kv.data(), 12);
  EXPECT_EQ(c.length(1, a), 12);
  EXPECT_THAT(error_message([&] { c.append(1, a, kv.data(), kv.data(), 1); }), HasSubstr("full"));
  EXPECT_EQ(c.length(1, a), 12);
  // Freeing b makes room again.
  c.remove_sequence(b);
  c.append(0, a, kv.data(), kv.data(), 8);
  EXPECT_EQ(c.length(0, a), 20);
}

TEST(PagedKVCache, SetThresholdsReencodesExistingKeys) {
  CacheConfig cfg = small_cache_config(64, 8, DType::kF32, 2, 2);
  const std::vector<int> lengths = {30, 11};
  FilledCache fc = make_filled_cache(cfg, lengths, 7, 10.0f);
  const std::vector<float> t = {-3.f, 0.5f, 4.f};
  fc.cache->set_thresholds(1, 0, t);
  EXPECT_EQ(
      std::vector<float>(fc.cache->thresholds(1, 0).begin(), fc.cache->thresholds(1, 0).end()), t);
  EXPECT_EQ(
      std::vector<float>(fc.cache->thresholds(0, 0).begin(), fc.cache->thresholds(0, 0).end()),
      default_thresholds(2));
  EXPECT_EQ(
      std::vector<float>(fc.cache->thresholds(1, 1).begin(), fc.cache->thresholds(1, 1).end()),
      default_thresholds(2));
  expect_codes_and_minmax(fc, lengths);  // uses each head's thresholds in effect
  // The new thresholds really change codes (so the check above is not vacuous).
  CodeSpec spec = cfg.codes;
  spec.head_dim = 64;
  std::vector<uint8_t> with_new(64), with_default(64);
  int differ = 0;
  for (int tok = 0; tok < 30; ++tok) {
    compute_buckets(spec, t, fc.key(1, 0, 0, tok), with_new.data());
    compute_buckets(spec, default_thresholds(2), fc.key(1, 0, 0, tok), with_default.data());
    differ += with_new != with_default;
  }
  EXPECT_GT(differ, 20);
  // Keys appended afterwards use the new thresholds too.
  std::mt19937 g(8);
  const auto k = random_normal(g, 5 * 2 * 64, 10.0f);
  fc.cache->append(1, fc.seqs[0], k.data(), k.data(), 5);
  for (int tok = 0; tok < 5; ++tok)
    for (int h = 0; h < 2; ++h)
      fc.k[1][0][h].insert(fc.k[1][0][h].end(), k.begin() + (tok * 2 + h) * 64,
                           k.begin() + (tok * 2 + h + 1) * 64);
  fc.cache->append(0, fc.seqs[0], k.data(), k.data(), 5);
  for (int tok = 0; tok < 5; ++tok)
    for (int h = 0; h < 2; ++h)
      fc.k[0][0][h].insert(fc.k[0][0][h].end(), k.begin() + (tok * 2 + h) * 64,
                           k.begin() + (tok * 2 + h + 1) * 64);
  expect_codes_and_minmax(fc, {35, 11});
}

TEST(PagedKVCache, SetThresholdsRejectsBadValuesAndKeepsOldOnes) {
  CacheConfig cfg = small_cache_config(32, 8, DType::kF32);
  const FilledCache fc = make_filled_cache(cfg, {10}, 9);
  const std::vector<float> wrong_count = {0.f}, unsorted = {1.f, 0.f, 2.f};
  EXPECT_THAT(error_message([&] { fc.cache->set_thresholds(0, 0, wrong_count); }),
              HasSubstr("3 thresholds"));
  EXPECT_THAT(error_message([&] { fc.cache->set_thresholds(0, 0, unsorted); }),
              HasSubstr("strictly ascending"));
  EXPECT_EQ(
      std::vector<float>(fc.cache->thresholds(0, 0).begin(), fc.cache->thresholds(0, 0).end()),
      default_thresholds(2));
  expect_codes_and_minmax(fc, {10});
  const std::vector<float> ok = {-1.f, 0.f, 1.f};
  EXPECT_THAT(error_message([&] { fc.cache->set_thresholds(1, 0, ok); }),
              AllOf(HasSubstr("layer 1"), HasSubstr("out of range")));
  EXPECT_THAT(error_message([&] { fc.cache->set_thresholds(0, 1, ok); }),
              AllOf(HasSubstr("kv_head 1"), HasSubstr("out of range")));
}

// calibrate_thresholds(layer): per head, the equal-mass quantiles of the transformed elements of
// every live sequence's keys (when max_samples covers them all), then the codes are re-encoded.
TEST(PagedKVCache, CalibrateThresholdsFromStoredKeys) {
  for (bool hadamard : {true, false})
    for (int bits = 1; bits <= 3; ++bits) {
      SCOPED_TRACE(std::string(hadamard ? "hadamard" : "raw") + " bits " + std::to_string(bits));
      CacheConfig cfg = small_cache_config(32, 8, DType::kBF16, 2, 2);
      cfg.codes.bits = bits;
      cfg.codes.hadamard = hadamard;
      const std::vector<int> lengths = {40, 13, 27};
      FilledCache fc = make_filled_cache(cfg, lengths, 900 + bits, 3.0f);
      // A removed sequence does not take part.
      fc.cache->remove_sequence(fc.seqs[1]);
      fc.cache->calibrate_thresholds(1, 4096);
      CodeSpec spec = fc.cache->config().codes;
      for (int h = 0; h < 2; ++h) {
        std::vector<float> values;
        for (int s : {0, 2})
          for (int t = 0; t < lengths[s]; ++t) {
            std::vector<float> x(fc.key(1, s, h, t), fc.key(1, s, h, t) + 32);
            if (hadamard) hadamard_transform(x.data(), 1, 32);
            values.insert(values.end(), x.begin(), x.end());
          }
        const auto want = calibrate_thresholds(values, bits);
        const auto got = fc.cache->thresholds(1, h);
        EXPECT_EQ(std::vector<float>(got.begin(), got.end()), want) << "head " << h;
        // Equal mass: every bucket holds about the same share of the key elements (up to the
        // values tied with a threshold: bf16 keys repeat).
        std::vector<int> count(1 << bits, 0);
        for (float x : values) ++count[bucket_of(x, got)];
        long ties = 0;
        for (float t : got)
          ties = std::max<long>(ties, std::count(values.begin(), values.end(), t));
        for (int c : count) EXPECT_NEAR(c, double(values.size()) / (1 << bits), 2.0 + ties);
        // Layer 0 keeps the defaults.
        const auto l0 = fc.cache->thresholds(0, h);
        EXPECT_EQ(std::vector<float>(l0.begin(), l0.end()), default_thresholds(bits));
      }
      // Codes of the live sequences were re-encoded with the new thresholds.
      FilledCache live;
      live.cache = std::move(fc.cache);
      live.seqs = {fc.seqs[0], fc.seqs[2]};
      live.k.assign(2, {});
      live.v.assign(2, {});
      for (int l = 0; l < 2; ++l)
        for (int s : {0, 2}) {
          live.k[l].push_back(fc.k[l][s]);
          live.v[l].push_back(fc.v[l][s]);
        }
      expect_codes_and_minmax(live, {40, 27});
    }
}

// "from at most max_samples keys": with three keys whose transformed elements are all 0, 10 and
// 20 respectively (key = c·sqrt(d)·e_0), 2-bit thresholds from all three are exactly {0, 10, 20};
// from at most two keys, at most two of the key values can appear among the thresholds.
TEST(PagedKVCache, CalibrateThresholdsUsesAtMostMaxSamplesKeys) {
  CacheConfig cfg = small_cache_config(16, 4, DType::kF32);
  cfg.num_pages = 2;
  PagedKVCache c(cfg);
  const SeqId s = c.add_sequence();
  std::vector<float> k(3 * 16, 0.0f), v(3 * 16, 0.0f);
  for (int t = 0; t < 3; ++t) k[t * 16] = 10.0f * t * 4.0f;  // sqrt(16) = 4
  c.append(0, s, k.data(), v.data(), 3);
  c.calibrate_thresholds(0, 3);
  {
    const auto t = c.thresholds(0, 0);
    EXPECT_EQ(std::vector<float>(t.begin(), t.end()), (std::vector<float>{0.f, 10.f, 20.f}));
  }
  for (int max_samples : {1, 2}) {
    SCOPED_TRACE("max_samples " + std::to_string(max_samples));
    c.calibrate_thresholds(0, max_samples);
    const auto t = c.thresholds(0, 0);
    int key_values = 0;
    for (float x : {0.f, 10.f, 20.f}) key_values += std::count(t.begin(), t.end(), x) > 0;
    EXPECT_LE(key_values, max_samples) << "thresholds " << t[0] << " " << t[1] << " " << t[2]
                                       << " come from more than " << max_samples << " keys";
  }
}

TEST(PagedKVCache, CalibrateThresholdsErrors) {
  CacheConfig cfg = small_cache_config(16, 4, DType::kF32, 1, 2);
  cfg.num_pages = 4;
  PagedKVCache c(cfg);
  const SeqId s = c.add_sequence();
  EXPECT_THAT(error_message([&] { c.calibrate_thresholds(0); }),
              AllOf(HasSubstr("layer 0"), HasSubstr("no keys")));
  std::vector<float> kv(16 * 4, 1.0f);
  c.append(0, s, kv.data(), kv.data(), 4);
  EXPECT_THAT(error_message([&] { c.calibrate_thresholds(1); }), HasSubstr("no keys"));
  EXPECT_THAT(error_message([&] { c.calibrate_thresholds(2); }), HasSubstr("layer 2"));
  EXPECT_THAT(error_message([&] { c.calibrate_thresholds(0, 0); }),
              AllOf(HasSubstr("max_samples"), HasSubstr("got 0")));
  cfg.store_codes = false;
  PagedKVCache no_codes(cfg);
  const SeqId s2 = no_codes.add_sequence();
  no_codes.append(0, s2, kv.data(), kv.data(), 4);
  EXPECT_THAT(error_message([&] { no_codes.calibrate_thresholds(0); }), HasSubstr("store_codes"));
}

TEST(PagedKVCache, MultipleLayersShareOnePageTable) {
  CacheConfig cfg = small_cache_config(16, 4, DType::kF32, 1, 3);
  cfg.num_pages = 6;
  PagedKVCache c(cfg);
  const SeqId s = c.add_sequence();
  std::vector<float> kv(24 * 16, 1.0f);
  c.append(2, s, kv.data(), kv.data(), 9);  // 3 pages
  EXPECT_EQ(c.page_table(s).size(), 3u);
  EXPECT_EQ(c.length(0, s), 0);
  c.append(0, s, kv.data(), kv.data(), 12);  // still 3 pages
  EXPECT_EQ(c.page_table(s).size(), 3u);
  EXPECT_EQ(c.free_pages(), 3);
  c.append(1, s, kv.data(), kv.data(), 13);  // 4 pages
  EXPECT_EQ(c.page_table(s).size(), 4u);
  EXPECT_EQ(c.length(1, s), 13);
  EXPECT_EQ(c.kv(1, s, 0).length, 13);
  EXPECT_EQ(c.kv(2, s, 0).length, 9);
  EXPECT_EQ(c.codes(0, s, 0).length, 12);
  EXPECT_EQ(c.minmax(2, s, 0).length, 9);
}

TEST(PagedKVCache, ZeroTokenAppendAndBadArguments) {
  CacheConfig cfg = small_cache_config(16, 4, DType::kF32, 2, 2);
  cfg.num_pages = 4;
  PagedKVCache c(cfg);
  const SeqId s = c.add_sequence();
  c.append(0, s, nullptr, nullptr, 0);
  EXPECT_EQ(c.length(0, s), 0);
  EXPECT_EQ(c.free_pages(), 4);
  std::vector<float> kv(64, 1.0f);
  EXPECT_THAT(error_message([&] { c.append(0, s, kv.data(), kv.data(), -1); }), HasSubstr("-1"));
  EXPECT_THAT(error_message([&] { c.append(2, s, kv.data(), kv.data(), 1); }),
              AllOf(HasSubstr("layer 2"), HasSubstr("out of range")));
  EXPECT_THAT(error_message([&] { c.append(-1, s, kv.data(), kv.data(), 1); }),
              HasSubstr("layer -1"));
  EXPECT_THAT(error_message([&] { c.append(0, 7, kv.data(), kv.data(), 1); }),
              HasSubstr("sequence id 7"));
  EXPECT_THAT(error_message([&] { c.kv(0, s, 2); }),
              AllOf(HasSubstr("kv_head 2"), HasSubstr("out of range")));
  EXPECT_THAT(error_message([&] { c.codes(0, s, -1); }), HasSubstr("kv_head -1"));
  EXPECT_THAT(error_message([&] { c.minmax(3, s, 0); }), HasSubstr("layer 3"));
  EXPECT_THAT(error_message([&] { c.append(0, s, nullptr, kv.data(), 1); }), HasSubstr("null"));
  EXPECT_GT(c.bytes(), 0u);
}

TEST(PagedKVCache, CachesWithoutCodesOrMinMax) {
  CacheConfig cfg = small_cache_config(16, 4, DType::kF32);
  cfg.num_pages = 2;
  cfg.store_codes = false;
  cfg.store_page_minmax = false;
  cfg.codes.bits = 4;  // not validated when no codes are stored
  PagedKVCache c(cfg);
  const SeqId s = c.add_sequence();
  std::vector<float> kv(16 * 5, 2.0f);
  c.append(0, s, kv.data(), kv.data(), 5);
  EXPECT_EQ(c.length(0, s), 5);
  EXPECT_THAT(error_message([&] { c.codes(0, s, 0); }), HasSubstr("store_codes"));
  EXPECT_THAT(error_message([&] { c.minmax(0, s, 0); }), HasSubstr("store_page_minmax"));
  EXPECT_THAT(error_message([&] { c.thresholds(0, 0); }), HasSubstr("store_codes"));
  const std::vector<float> t = {0.f};
  EXPECT_THAT(error_message([&] { c.set_thresholds(0, 0, t); }), HasSubstr("store_codes"));
  CacheConfig full = cfg;
  full.store_codes = true;
  full.store_page_minmax = true;
  full.codes.bits = 2;
  EXPECT_GT(PagedKVCache(full).bytes(), c.bytes());
}

TEST(PagedKVCache, BadConfigThrowsNamingTheField) {
  auto base = [] {
    CacheConfig c = small_cache_config(64, 16, DType::kF16);
    c.num_pages = 4;
    return c;
  };
  auto msg_of = [](const CacheConfig& c) { return error_message([&] { PagedKVCache cache(c); }); };
  CacheConfig c = base();
  c.head_dim = 100;
  EXPECT_THAT(msg_of(c), AllOf(HasSubstr("head_dim"), HasSubstr("power of two"), HasSubstr("100")));
  c.head_dim = 512;
  EXPECT_THAT(msg_of(c), AllOf(HasSubstr("head_dim"), HasSubstr("512")));
  c = base();
  c.page_size = 0;
  EXPECT_THAT(msg_of(c), AllOf(HasSubstr("page_size"), HasSubstr("got 0")));
  c.page_size = -4;
  EXPECT_THAT(msg_of(c), AllOf(HasSubstr("page_size"), HasSubstr("-4")));
  c = base();
  c.num_pages = 0;
  EXPECT_THAT(msg_of(c), AllOf(HasSubstr("num_pages"), HasSubstr("got 0")));
  c = base();
  c.codes.bits = 4;
  EXPECT_THAT(msg_of(c), AllOf(HasSubstr("bits"), HasSubstr("got 4")));
  c.codes.bits = 0;
  EXPECT_THAT(msg_of(c), AllOf(HasSubstr("bits"), HasSubstr("got 0")));
  c = base();
  c.codes.thresholds = {1.f, -1.f, 0.f};
  EXPECT_THAT(msg_of(c), HasSubstr("strictly ascending"));
  c = base();
  c.num_layers = 0;
  EXPECT_THAT(msg_of(c), AllOf(HasSubstr("num_layers"), HasSubstr("got 0")));
  c = base();
  c.num_kv_heads = 0;
  EXPECT_THAT(msg_of(c), AllOf(HasSubstr("num_kv_heads"), HasSubstr("got 0")));
  EXPECT_NO_THROW(base().validate());
  EXPECT_EQ(base().pages_for(0), 0);
  EXPECT_EQ(base().pages_for(16), 1);
  EXPECT_EQ(base().pages_for(17), 2);
}

}  // namespace
}  // namespace adamas::test
