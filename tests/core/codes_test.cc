// codes.h: bucketization, key bit-plane packing, query thermometer planes, the exact L1/L2 from
// popcounts (vs brute force on random bucket vectors), argument errors and calibration.
#include "adamas/core/codes.h"

#include "adamas/core/estimate.h"
#include "adamas/core/hadamard.h"
#include "test_util.h"

namespace adamas::test {
namespace {

constexpr int kDims[] = {16, 32, 64, 128, 256};

CodeSpec spec_of(int d, int bits, bool hadamard = true) {
  CodeSpec s;
  s.head_dim = d;
  s.bits = bits;
  s.hadamard = hadamard;
  return s;
}

int brute_bucket(double x, const std::vector<float>& t) {
  int b = 0;
  for (float v : t) b += x > double{v};
  return b;
}

TEST(Codes, DefaultThresholds) {
  EXPECT_EQ(default_thresholds(1), (std::vector<float>{0.f}));
  EXPECT_EQ(default_thresholds(2), (std::vector<float>{-10.f, 0.f, 10.f}));
  EXPECT_EQ(default_thresholds(3), (std::vector<float>{-15.f, -10.f, -5.f, 0.f, 5.f, 10.f, 15.f}));
  CodeSpec s = spec_of(128, 2);
  EXPECT_EQ(s.effective_thresholds(), default_thresholds(2));
  s.thresholds = {-1.f, 0.5f, 2.f};
  EXPECT_EQ(s.effective_thresholds(), s.thresholds);
  EXPECT_EQ(s.words(), 2);
  EXPECT_EQ(s.thermo_planes(), 3);
  EXPECT_EQ(s.key_code_bytes(), 32u);  // 2 bits × 128 dims
  EXPECT_EQ(spec_of(16, 3).words(), 1);
  EXPECT_EQ(spec_of(256, 3).key_code_bytes(), 96u);
  EXPECT_EQ(code_slot_stride(1), 8);
  EXPECT_EQ(code_slot_stride(8), 8);
  EXPECT_EQ(code_slot_stride(9), 16);
  EXPECT_EQ(code_slot_stride(64), 64);
  EXPECT_EQ(code_page_words(spec_of(128, 2), 5), 2u * 2u * 8u);
}

TEST(Codes, BucketOfIsStrictlyAboveThresholds) {
  for (int bits = 1; bits <= 3; ++bits) {
    const auto t = default_thresholds(bits);
    const int top = (1 << bits) - 1;
    EXPECT_EQ(bucket_of(-INFINITY, t), 0);
    EXPECT_EQ(bucket_of(INFINITY, t), top);
    EXPECT_EQ(bucket_of(-1e30f, t), 0);
    EXPECT_EQ(bucket_of(1e30f, t), top);
    for (int m = 0; m < top; ++m) {
      SCOPED_TRACE("bits " + std::to_string(bits) + ", threshold " + std::to_string(t[m]));
      EXPECT_EQ(bucket_of(t[m], t), m) << "x == t is not above t";
      EXPECT_EQ(bucket_of(std::nextafter(t[m], INFINITY), t), m + 1);
      EXPECT_EQ(bucket_of(std::nextafter(t[m], -INFINITY), t), m);
    }
  }
  // Custom thresholds, and a value in every bucket.
  const std::vector<float> t = {-2.f, -0.5f, 0.25f, 1.f, 3.f, 4.f, 8.f};
  const float xs[] = {-5.f, -1.f, 0.f, 0.5f, 2.f, 3.5f, 5.f, 9.f};
  for (int b = 0; b < 8; ++b) EXPECT_EQ(bucket_of(xs[b], t), b) << xs[b];
}

// compute_buckets = bucketize(x · H) with H the explicit matrix (double); values that land
// within 1e-3 of a threshold are skipped (fp32 vs double rounding may put them either side).
TEST(Codes, ComputeBucketsMatchesExplicitTransformOnEveryTarget) {
  for_each_target([](int64_t) {
    for (int bits = 1; bits <= 3; ++bits) {
      for (int d : kDims) {
        SCOPED_TRACE("bits " + std::to_string(bits) + ", d " + std::to_string(d));
        const CodeSpec spec = spec_of(d, bits);
        const auto t = spec.effective_thresholds();
        const auto H = sylvester_matrix(d);
        std::mt19937 g(5000 + 10 * d + bits);
        int compared = 0, total = 0;
        for (int row = 0; row < 8; ++row) {
          const auto x = random_normal(g, d, 10.0f);
          std::vector<uint8_t> b(d);
          compute_buckets(spec, t, x.data(), b.data());
          const auto y = hadamard_double(x.data(), d, H);
          for (int i = 0; i < d; ++i) {
            ++total;
            bool near = false;
            for (float v : t) near |= std::abs(y[i] - v) < 1e-3;
            if (near) continue;
            ++compared;
            ASSERT_EQ(b[i], brute_bucket(y[i], t)) << "row " << row << " dim " << i;
          }
        }
        EXPECT_GT(compared, total * 9 / 10);
      }
    }
  });
}

TEST(Codes, ComputeBucketsWithoutHadamardBucketizesRawValues) {
  for (int bits = 1; bits <= 3; ++bits) {
    const CodeSpec spec = spec_of(64, bits, /*hadamard=*/false);
    const auto t = default_thresholds(bits);
    std::mt19937 g(6000 + bits);
    auto x = random_normal(g, 64, 12.0f);
    for (int m = 0; m < static_cast<int>(t.size()); ++m) x[m] = t[m];  // exactly on thresholds
    std::vector<uint8_t> b(64);
    compute_buckets(spec, t, x.data(), b.data());
    for (int i = 0; i < 64; ++i) ASSERT_EQ(b[i], brute_bucket(x[i], t)) << i;
  }
}

// encode_keys → unpack_key_buckets == compute_buckets, for each dtype of the key rows; the
// written words follow the documented layout (checked by reading it by hand), dimensions ≥ d of
// the last word are zero, and no other slot is touched.
TEST(Codes, EncodeKeysRoundTripAndLayout) {
  for (int bits = 1; bits <= 3; ++bits) {
    for (int d : kDims) {
      for (DType dt : {DType::kF32, DType::kF16, DType::kBF16}) {
        SCOPED_TRACE("bits " + std::to_string(bits) + ", d " + std::to_string(d) + ", " +
                     dtype_str(dt));
        const CodeSpec spec = spec_of(d, bits);
        const auto t = spec.effective_thresholds();
        const int P = 13, stride = code_slot_stride(P), slot0 = 3, n = 9;
        ASSERT_EQ(stride, 16);
        const size_t key_stride = d + 8;
        std::mt19937 g(7000 + 10 * d + bits + 100 * static_cast<int>(dt));
        auto raw = random_normal(g, n * key_stride, 10.0f);
        std::vector<std::byte> keys(raw.size() * dtype_size(dt));
        convert_from_f32(raw.data(), keys.data(), dt, raw.size());
        const uint64_t kFill = 0xA5A5A5A5DEADBEEFull;
        std::vector<uint64_t> page(code_page_words(spec, P), kFill);
        encode_keys(spec, t, keys.data(), dt, n, key_stride, page.data(), stride, slot0);
        const int words = spec.words();
        for (int r = 0; r < n; ++r) {
          const int slot = slot0 + r;
          std::vector<float> x(d);
          convert_to_f32(keys.data() + r * key_stride * dtype_size(dt), dt, x.data(), d);
          std::vector<uint8_t> want(d), got(d);
          compute_buckets(spec, t, x.data(), want.data());
          unpack_key_buckets(spec, page.data(), stride, slot, got.data());
          ASSERT_EQ(got, want) << "slot " << slot;
          for (int p = 0; p < bits; ++p)
            for (int w = 0; w < words; ++w) {
              const uint64_t word = page[(size_t(p) * words + w) * stride + slot];
              for (int i = 0; i < 64; ++i) {
                const int dim = w * 64 + i;
                const int bit = (word >> i) & 1;
                if (dim < d) {
                  ASSERT_EQ(bit, (want[dim] >> p) & 1) << "plane " << p << " dim " << dim;
                } else {
                  ASSERT_EQ(bit, 0) << "plane " << p << " unused dim " << dim;
                }
              }
            }
        }
        for (int p = 0; p < bits; ++p)
          for (int w = 0; w < words; ++w)
            for (int s = 0; s < stride; ++s)
              if (s < slot0 || s >= slot0 + n) {
                ASSERT_EQ(page[(size_t(p) * words + w) * stride + s], kFill)
                    << "slot " << s << " was written";
              }
      }
    }
  }
}

TEST(Codes, EncodeKeysRejectsSlotsOutsideThePage) {
  const CodeSpec spec = spec_of(64, 2);
  std::vector<float> keys(64 * 10, 1.0f);
  std::vector<uint64_t> page(code_page_words(spec, 8));
  EXPECT_THAT(error_message([&] {
                encode_keys(spec, spec.effective_thresholds(), keys.data(), DType::kF32, 4, 64,
                            page.data(), 8, 5);
              }),
              HasSubstr("do not fit"));
  EXPECT_THAT(error_message([&] {
                encode_keys(spec, spec.effective_thresholds(), keys.data(), DType::kF32, 1, 64,
                            page.data(), 8, -1);
              }),
              HasSubstr("do not fit"));
}

TEST(Codes, QueryThermometerPlanesCountTheBucket) {
  for_each_target([](int64_t) {
    for (int bits = 1; bits <= 3; ++bits) {
      for (int d : kDims) {
        SCOPED_TRACE("bits " + std::to_string(bits) + ", d " + std::to_string(d));
        const CodeSpec spec = spec_of(d, bits);
        const auto t = spec.effective_thresholds();
        std::mt19937 g(8000 + d + bits);
        const auto q = random_normal(g, d, 10.0f);
        const QueryCode code = encode_query(spec, t, q.data());
        EXPECT_EQ(code.bits, bits);
        EXPECT_EQ(code.words, spec.words());
        std::vector<uint8_t> b(d);
        compute_buckets(spec, t, q.data(), b.data());
        const int planes = spec.thermo_planes();
        for (int i = 0; i < d; ++i) {
          int count = 0;
          for (int m = 0; m < planes; ++m) {
            const int bit = (code.planes[size_t(m) * code.words + i / 64] >> (i % 64)) & 1;
            ASSERT_EQ(bit, b[i] >= m + 1) << "plane " << m << " dim " << i;
            count += bit;
          }
          ASSERT_EQ(count, b[i]) << "dim " << i;
        }
        // Nothing set outside the planes × words in use, nor above d.
        for (size_t w = 0; w < code.planes.size(); ++w) {
          const size_t m = w / code.words, word = w % code.words;
          if (static_cast<int>(w) >= planes * code.words) {
            ASSERT_EQ(code.planes[w], 0u) << "word " << w;
          } else if (d < 64) {
            ASSERT_EQ(code.planes[m * code.words + word] >> d, 0u) << "bits above d in word " << w;
          }
        }
      }
    }
  });
}

// The exact L1 of thermometer popcounts: for random bucket vectors packed by hand (key: binary
// planes; query: thermometer planes), estimate_distances (every target) and its reference equal
// brute-force Σ|bq − bk| and Σ(bq − bk)². Also checks the thermometer identity itself.
TEST(Codes, ThermometerPopcountIsExactL1AndL2OnRandomBuckets) {
  for_each_target([](int64_t) {
    for (int bits = 1; bits <= 3; ++bits) {
      for (int d : kDims) {
        SCOPED_TRACE("bits " + std::to_string(bits) + ", d " + std::to_string(d));
        std::mt19937 g(9000 + d * 4 + bits);
        const CodeSpec spec = spec_of(d, bits);
        const int P = 37, stride = code_slot_stride(P), n = P;
        std::vector<uint64_t> page(code_page_words(spec, P), 0);
        std::vector<std::vector<uint8_t>> kb(n);
        for (int s = 0; s < n; ++s) {
          kb[s] = random_buckets(g, d, bits);
          pack_key_planes(kb[s].data(), bits, d, page.data(), stride, s);
        }
        const auto qb = random_buckets(g, d, bits);
        const QueryCode qc = thermometer_query(qb.data(), bits, d);
        const int32_t page_id = 0;
        PagedCodes codes;
        codes.pool = page.data();
        codes.page_ids = &page_id;
        codes.page_size = P;
        codes.slot_stride = stride;
        codes.length = n;
        for (Distance dist : {Distance::kL1, Distance::kL2}) {
          std::vector<uint16_t> fast(n), ref_out(n);
          estimate_distances(spec, dist, &qc, 1, codes, false, fast.data(), n);
          ref::estimate_distances(spec, dist, &qc, 1, codes, false, ref_out.data(), n);
          for (int s = 0; s < n; ++s) {
            int want = 0;
            for (int i = 0; i < d; ++i) {
              const int delta = std::abs(int{qb[i]} - int{kb[s][i]});
              want += dist == Distance::kL1 ? delta : delta * delta;
            }
            ASSERT_EQ(fast[s], want) << (dist == Distance::kL1 ? "L1" : "L2") << " key " << s;
            ASSERT_EQ(ref_out[s], want) << (dist == Distance::kL1 ? "L1" : "L2") << " key " << s;
          }
        }
        // Σ_m popcount(t_m(q) XOR t_m(k)) == L1, with the key's thermometer built by hand too.
        for (int s = 0; s < n; ++s) {
          const QueryCode kc = thermometer_query(kb[s].data(), bits, d);
          int pc = 0, l1 = 0;
          for (int w = 0; w < spec.thermo_planes() * spec.words(); ++w)
            pc += std::popcount(qc.planes[w] ^ kc.planes[w]);
          for (int i = 0; i < d; ++i) l1 += std::abs(int{qb[i]} - int{kb[s][i]});
          ASSERT_EQ(pc, l1) << "key " << s;
        }
      }
    }
  });
}

// The paper's kernel XORs the 2-bit binary codes and popcounts: that is not the L1 distance
// (buckets 1 = 01b and 2 = 10b differ by 1 but their XOR has two bits set; 0 vs 3 differ by 3 but
// XOR has two). The library's estimate gives the true L1.
TEST(Codes, NaiveXorPopcountOfBinaryCodesIsNotL1) {
  EXPECT_EQ(std::popcount(0b01u ^ 0b10u), 2);
  EXPECT_EQ(std::abs(1 - 2), 1);
  EXPECT_EQ(std::popcount(0b00u ^ 0b11u), 2);
  EXPECT_EQ(std::abs(0 - 3), 3);
  const int d = 128, bits = 2;
  const CodeSpec spec = spec_of(d, bits);
  // Query: all buckets 1; key 0: all buckets 2; key 1: all 0 vs 3 pattern inverted.
  std::vector<uint8_t> qb(d, 1), k0(d, 2), k1(d, 3), q3(d, 0);
  std::vector<uint64_t> page(code_page_words(spec, 8), 0);
  pack_key_planes(k0.data(), bits, d, page.data(), 8, 0);
  pack_key_planes(k1.data(), bits, d, page.data(), 8, 1);
  const int32_t page_id = 0;
  PagedCodes codes;
  codes.pool = page.data();
  codes.page_ids = &page_id;
  codes.page_size = 8;
  codes.slot_stride = 8;
  codes.length = 2;
  const QueryCode q1 = thermometer_query(qb.data(), bits, d);
  const QueryCode q0 = thermometer_query(q3.data(), bits, d);
  for_each_target([&](int64_t) {
    uint16_t out[2];
    estimate_distances(spec, Distance::kL1, &q1, 1, codes, false, out, 2);
    EXPECT_EQ(out[0], d * 1);  // |1 − 2| per dim; naive XOR-popcount would give 2 per dim
    EXPECT_EQ(out[1], d * 2);  // |1 − 3|
    estimate_distances(spec, Distance::kL1, &q0, 1, codes, false, out, 2);
    EXPECT_EQ(out[0], d * 2);
    EXPECT_EQ(out[1], d * 3);  // |0 − 3|; naive would give 2 per dim
  });
  // On random bucket vectors the naive interleaved-XOR popcount disagrees with the L1.
  std::mt19937 g(42);
  int disagree = 0;
  for (int trial = 0; trial < 100; ++trial) {
    const auto a = random_buckets(g, d, 2), b = random_buckets(g, d, 2);
    int naive = 0, l1 = 0;
    for (int i = 0; i < d; ++i) {
      naive += std::popcount(static_cast<unsigned>(a[i] ^ b[i]));
      l1 += std::abs(a[i] - b[i]);
    }
    disagree += naive != l1;
  }
  EXPECT_GT(disagree, 90);
}

TEST(Codes, BadThresholdsThrowWithClearMessages) {
  CodeSpec s = spec_of(128, 2);
  s.thresholds = {-1.f, 1.f};  // wrong count
  EXPECT_THAT(error_message([&] { s.validate(); }),
              AllOf(HasSubstr("2-bit"), HasSubstr("3 thresholds"), HasSubstr("got 2")));
  s.thresholds = {-1.f, 1.f, 0.f};  // unsorted
  EXPECT_THAT(error_message([&] { s.validate(); }), HasSubstr("strictly ascending"));
  s.thresholds = {-1.f, 1.f, 1.f};  // not strictly ascending
  EXPECT_THAT(error_message([&] { s.validate(); }), HasSubstr("strictly ascending"));
  s.thresholds = {-1.f, NAN, 1.f};
  EXPECT_THAT(error_message([&] { s.validate(); }), HasSubstr("not finite"));
  s.thresholds = {-INFINITY, 0.f, 1.f};
  EXPECT_THAT(error_message([&] { s.validate(); }), HasSubstr("not finite"));
  s.thresholds = {0.5f};
  s.bits = 1;
  EXPECT_NO_THROW(s.validate());

  // The same checks where thresholds are passed as a span.
  const CodeSpec spec = spec_of(64, 2);
  const std::vector<float> q(64, 1.0f);
  const std::vector<float> bad_count = {0.f}, unsorted = {1.f, 0.f, 2.f}, nan = {0.f, 1.f, NAN};
  EXPECT_THAT(error_message([&] { encode_query(spec, bad_count, q.data()); }),
              HasSubstr("3 thresholds"));
  EXPECT_THAT(error_message([&] { encode_query(spec, unsorted, q.data()); }),
              HasSubstr("strictly ascending"));
  EXPECT_THAT(error_message([&] { encode_query(spec, nan, q.data()); }), HasSubstr("not finite"));
  std::vector<uint64_t> page(code_page_words(spec, 8));
  EXPECT_THAT(error_message([&] {
                encode_keys(spec, unsorted, q.data(), DType::kF32, 1, 64, page.data(), 8, 0);
              }),
              HasSubstr("strictly ascending"));
  EXPECT_THAT(error_message([&] {
                encode_keys(spec, bad_count, q.data(), DType::kF32, 1, 64, page.data(), 8, 0);
              }),
              HasSubstr("3 thresholds"));
}

TEST(Codes, BadBitsThrowWithClearMessages) {
  for (int bits : {0, 4, -1}) {
    SCOPED_TRACE("bits " + std::to_string(bits));
    const auto msg =
        AllOf(HasSubstr("bits must be 1, 2 or 3"), HasSubstr("got " + std::to_string(bits)));
    CodeSpec s = spec_of(128, bits);
    EXPECT_THAT(error_message([&] { s.validate(); }), msg);
    EXPECT_THAT(error_message([&] { default_thresholds(bits); }), msg);
    const std::vector<float> values(1000, 1.0f);
    EXPECT_THAT(error_message([&] { calibrate_thresholds(values, bits); }), msg);
    const std::vector<float> q(128, 1.0f);
    EXPECT_THAT(error_message([&] { encode_query(s, default_thresholds(2), q.data()); }), msg);
  }
  CodeSpec s = spec_of(100, 2);
  EXPECT_THAT(error_message([&] { s.validate(); }),
              AllOf(HasSubstr("power of two"), HasSubstr("100")));
}

// encode_keys writes the cache's codes; like encode_query it must reject a spec it cannot
// encode (bits outside 1..3, or a head_dim that is not a power of two in [16, 256]; the latter
// would also overflow its fixed 256-float stack buffers) instead of silently writing nonsense.
TEST(Codes, EncodeKeysValidatesTheSpec) {
  std::vector<float> keys(256, 1.0f);
  std::vector<uint64_t> page(64, 0);
  {
    CodeSpec s = spec_of(64, 0);
    const std::vector<float> none;  // 2^0 − 1 = 0 thresholds
    EXPECT_THAT(error_message([&] {
                  encode_keys(s, none, keys.data(), DType::kF32, 1, 64, page.data(), 8, 0);
                }),
                HasSubstr("bits must be 1, 2 or 3"));
  }
  {
    CodeSpec s = spec_of(100, 1, /*hadamard=*/false);
    const std::vector<float> t = {0.f};
    EXPECT_THAT(error_message([&] {
                  encode_keys(s, t, keys.data(), DType::kF32, 1, 100, page.data(), 8, 0);
                }),
                AllOf(HasSubstr("power of two"), HasSubstr("100")));
  }
}

TEST(Codes, CalibratedThresholdsGiveEqualMassBuckets) {
  std::mt19937 g(11);
  const int n = 4096;
  auto v = random_normal(g, n, 7.0f);
  for (int bits = 1; bits <= 3; ++bits) {
    SCOPED_TRACE("bits " + std::to_string(bits));
    const auto t = calibrate_thresholds(v, bits);
    const int buckets = 1 << bits;
    ASSERT_EQ(static_cast<int>(t.size()), buckets - 1);
    for (size_t m = 1; m < t.size(); ++m) ASSERT_LT(t[m - 1], t[m]);
    CodeSpec s = spec_of(64, bits);
    s.thresholds = t;
    EXPECT_NO_THROW(s.validate());
    std::vector<int> count(buckets, 0);
    for (float x : v) ++count[bucket_of(x, t)];
    for (int b = 0; b < buckets; ++b) EXPECT_NEAR(count[b], n / buckets, 2) << "bucket " << b;
    // The thresholds are the empirical quantiles: the fraction of values ≤ t_m is m / buckets.
    std::vector<float> sorted = v;
    std::sort(sorted.begin(), sorted.end());
    for (int m = 1; m < buckets; ++m) {
      const auto le = std::upper_bound(sorted.begin(), sorted.end(), t[m - 1]) - sorted.begin();
      EXPECT_NEAR(double(le) / n, double(m) / buckets, 2.0 / n) << "threshold " << m;
    }
  }
  // The input is not modified.
  auto copy = v;
  calibrate_thresholds(v, 2);
  EXPECT_EQ(copy, v);
}

// NaN samples (e.g. from a broken key) must not silently corrupt the thresholds: either they are
// ignored (the result equals calibrating the finite samples alone) or the call throws
// adamas::Error. (std::nth_element with NaNs breaks its strict-weak-ordering precondition.)
TEST(Codes, CalibrationWithNaNSamplesIsIgnoredOrRejected) {
  std::mt19937 g(12);
  auto dirty = random_normal(g, 1000, 7.0f);
  std::vector<float> finite;
  for (size_t i = 0; i < dirty.size(); ++i) {
    if (i % 10 == 3) {
      dirty[i] = NAN;
    } else {
      finite.push_back(dirty[i]);
    }
  }
  for (int bits = 1; bits <= 3; ++bits) {
    SCOPED_TRACE("bits " + std::to_string(bits));
    const auto want = calibrate_thresholds(finite, bits);
    std::vector<float> got;
    try {
      got = calibrate_thresholds(dirty, bits);
    } catch (const adamas::Error& e) {
      SUCCEED() << "rejected: " << e.what();
      continue;
    }
    EXPECT_EQ(got, want) << "NaN samples changed the calibrated thresholds";
  }
}

TEST(Codes, CalibrationOfDegenerateDataStillGivesStrictlyAscendingThresholds) {
  for (int bits = 1; bits <= 3; ++bits) {
    std::vector<float> same(100, 0.25f);
    const auto t = calibrate_thresholds(same, bits);
    ASSERT_EQ(static_cast<int>(t.size()), (1 << bits) - 1);
    CodeSpec s = spec_of(64, bits);
    s.thresholds = t;
    EXPECT_NO_THROW(s.validate());
  }
  std::vector<float> tiny(3, 1.0f);
  EXPECT_THAT(error_message([&] { calibrate_thresholds(tiny, 2); }),
              AllOf(HasSubstr("at least 4"), HasSubstr("got 3")));
}

}  // namespace
}  // namespace adamas::test
