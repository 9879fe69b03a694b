// estimate.h: fast estimate_distances (every SIMD target) == ref::estimate_distances == brute force
// from compute_buckets, over bits × distance × sum_heads × nq × head_dim × length × page size,
// with shuffled (non-identity) page tables and garbage everywhere the kernel must not read.
#include "adamas/core/estimate.h"

#include "adamas/core/hadamard.h"
#include "test_util.h"

namespace adamas::test {
namespace {

constexpr int kDims[] = {16, 32, 64, 128, 256};
constexpr int kLengths[] = {1, 7, 63, 64, 65, 1000};
constexpr int kPageSizes[] = {1, 5, 16, 64};

struct Case {
  int bits, nq, d, length, page_size;
  Distance dist;
  bool sum_heads;
  std::string name() const {
    return "bits " + std::to_string(bits) + (dist == Distance::kL1 ? " L1" : " L2") +
           (sum_heads ? " summed" : " per-head") + " nq " + std::to_string(nq) + " d " +
           std::to_string(d) + " length " + std::to_string(length) + " page " +
           std::to_string(page_size);
  }
};

long worst_distance(const Case& c) {
  const long top = (1 << c.bits) - 1;
  return (c.dist == Distance::kL1 ? top : top * top) * c.d * (c.sum_heads ? c.nq : 1);
}

void run_case(const Case& c, uint32_t seed) {
  SCOPED_TRACE(c.name());
  std::mt19937 g(seed);
  CodeSpec spec;
  spec.head_dim = c.d;
  spec.bits = c.bits;
  const auto t = spec.effective_thresholds();
  // Keys: encode_keys page by page into a shuffled code pool.
  ManualCodes mc = make_code_pool(g, c.length, c.page_size, c.bits, c.d);
  const auto keys = random_normal(g, size_t(c.length) * c.d, 10.0f);
  const int stride = code_slot_stride(c.page_size);
  for (int p = 0; p * c.page_size < c.length; ++p) {
    const int n = std::min(c.page_size, c.length - p * c.page_size);
    encode_keys(spec, t, keys.data() + size_t(p) * c.page_size * c.d, DType::kF32, n, c.d,
                mc.page_ptr(p), stride, 0);
  }
  // Queries.
  const auto qs = random_normal(g, size_t(c.nq) * c.d, 10.0f);
  std::vector<QueryCode> qc(c.nq);
  for (int h = 0; h < c.nq; ++h) qc[h] = encode_query(spec, t, qs.data() + size_t(h) * c.d);
  // Brute force from compute_buckets.
  std::vector<uint8_t> kb(size_t(c.length) * c.d), qb(size_t(c.nq) * c.d);
  for (int i = 0; i < c.length; ++i)
    compute_buckets(spec, t, keys.data() + size_t(i) * c.d, kb.data() + size_t(i) * c.d);
  for (int h = 0; h < c.nq; ++h)
    compute_buckets(spec, t, qs.data() + size_t(h) * c.d, qb.data() + size_t(h) * c.d);
  const size_t out_stride = c.length + 3;
  const int rows = c.sum_heads ? 1 : c.nq;
  std::vector<uint16_t> want(rows * out_stride, 0xBEEF);
  for (int h = 0; h < c.nq; ++h)
    for (int i = 0; i < c.length; ++i) {
      int dist = 0;
      for (int j = 0; j < c.d; ++j) {
        const int delta = std::abs(int{qb[size_t(h) * c.d + j]} - int{kb[size_t(i) * c.d + j]});
        dist += c.dist == Distance::kL1 ? delta : delta * delta;
      }
      uint16_t& w = want[(c.sum_heads ? 0 : h * out_stride) + i];
      w = static_cast<uint16_t>(c.sum_heads && h > 0 ? w + dist : dist);
    }
  const PagedCodes view = mc.view();
  std::vector<uint16_t> ref_out(rows * out_stride, 0xBEEF);
  ref::estimate_distances(spec, c.dist, qc.data(), c.nq, view, c.sum_heads, ref_out.data(),
                          out_stride);
  ASSERT_EQ(ref_out, want) << "reference";
  // The fused histogram: per output row, the count of every distance value.
  const int bins = histogram_size(spec, c.dist, c.nq, c.sum_heads);
  ASSERT_EQ(bins, max_distance(spec, c.dist) * (c.sum_heads ? c.nq : 1) + 1);
  std::vector<uint32_t> want_hist(size_t(rows) * bins, 0);
  for (int r = 0; r < rows; ++r)
    for (int i = 0; i < c.length; ++i) ++want_hist[size_t(r) * bins + want[r * out_stride + i]];
  for_each_target([&](int64_t) {
    std::vector<uint16_t> fast(rows * out_stride, 0xBEEF);
    estimate_distances(spec, c.dist, qc.data(), c.nq, view, c.sum_heads, fast.data(), out_stride);
    ASSERT_EQ(fast, want) << "fast path";
    std::vector<uint16_t> fast2(rows * out_stride, 0xBEEF);
    std::vector<uint32_t> hist(size_t(rows) * bins + 4, 0);
    hist[size_t(rows) * bins] = 0xC0FFEE;  // guard after the last row
    estimate_distances(spec, c.dist, qc.data(), c.nq, view, c.sum_heads, fast2.data(), out_stride,
                       hist.data());
    ASSERT_EQ(fast2, want) << "fast path with histogram";
    ASSERT_EQ(hist[size_t(rows) * bins], 0xC0FFEEu) << "histogram written past its rows";
    hist.resize(size_t(rows) * bins);
    ASSERT_EQ(hist, want_hist) << "fused histogram";
  });
}

// The full cross product would be 92k configurations; instead every (bits, distance, sum_heads,
// length, page size, head_dim) runs, with nq cycling through 1..8, so that every value of every
// axis meets every other axis' values.
TEST(Estimate, FastEqualsReferenceEqualsBruteForce) {
  int index = 0, ran = 0;
  for (int bits = 1; bits <= 3; ++bits)
    for (Distance dist : {Distance::kL1, Distance::kL2})
      for (bool sum : {false, true})
        for (int length : kLengths)
          for (int page : kPageSizes)
            for (int d : kDims) {
              Case c{bits, 1 + index % 8, d, length, page, dist, sum};
              ++index;
              if (c.length == 1000) c.nq = std::min(c.nq, std::max(1, 512 / c.d));  // time
              if (worst_distance(c) > 65535) continue;  // overflow: tested below
              run_case(c, 100000 + index);
              ++ran;
              if (HasFatalFailure()) return;
            }
  EXPECT_GT(ran, 1400);
}

// Every nq 1..8 and head_dim at a length that is not a page multiple.
TEST(Estimate, EveryGroupSizeAndHeadDim) {
  int index = 0;
  for (int nq = 1; nq <= 8; ++nq)
    for (int d : kDims)
      for (bool sum : {false, true}) {
        const int bits = 1 + index % 3;
        const Distance dist = index % 2 ? Distance::kL2 : Distance::kL1;
        Case c{bits, nq, d, 37, 16, dist, sum};
        ++index;
        if (worst_distance(c) > 65535) continue;
        run_case(c, 200000 + index);
        if (HasFatalFailure()) return;
      }
}

TEST(Estimate, EmptySequenceWritesNothing) {
  std::mt19937 g(5);
  CodeSpec spec;
  spec.head_dim = 64;
  ManualCodes mc = make_code_pool(g, 0, 16, 2, 64);
  const auto q = random_normal(g, 64, 10.0f);
  const QueryCode qc = encode_query(spec, spec.effective_thresholds(), q.data());
  uint16_t out[4] = {7, 7, 7, 7};
  for_each_target([&](int64_t) {
    estimate_distances(spec, Distance::kL1, &qc, 1, mc.view(), false, out, 4);
    EXPECT_EQ(out[0], 7);
  });
  ref::estimate_distances(spec, Distance::kL1, &qc, 1, mc.view(), false, out, 4);
  EXPECT_EQ(out[0], 7);
}

TEST(Estimate, MaxDistance) {
  CodeSpec s;
  s.head_dim = 128;
  s.bits = 2;
  EXPECT_EQ(max_distance(s, Distance::kL1), 3 * 128);
  EXPECT_EQ(max_distance(s, Distance::kL2), 9 * 128);
  s.bits = 3;
  s.head_dim = 256;
  EXPECT_EQ(max_distance(s, Distance::kL1), 7 * 256);
  EXPECT_EQ(max_distance(s, Distance::kL2), 49 * 256);
  s.bits = 1;
  s.head_dim = 16;
  EXPECT_EQ(max_distance(s, Distance::kL2), 16);
}

// 3-bit L2 at d = 256 is 12544 per head: 8 heads summed (100352) do not fit uint16.
TEST(Estimate, OverflowOfSixteenBitsThrows) {
  std::mt19937 g(6);
  CodeSpec spec;
  spec.head_dim = 256;
  spec.bits = 3;
  ManualCodes mc = make_code_pool(g, 10, 16, 3, 256);
  std::vector<QueryCode> qc(8);
  for (auto& q : qc) {
    const auto x = random_normal(g, 256, 10.0f);
    q = encode_query(spec, spec.effective_thresholds(), x.data());
  }
  std::vector<uint16_t> out(8 * 10);
  const auto msg = AllOf(HasSubstr("16 bits"), HasSubstr("100352"));
  for_each_target([&](int64_t) {
    EXPECT_THAT(error_message([&] {
                  estimate_distances(spec, Distance::kL2, qc.data(), 8, mc.view(), true, out.data(),
                                     10);
                }),
                msg);
  });
  EXPECT_THAT(error_message([&] {
                ref::estimate_distances(spec, Distance::kL2, qc.data(), 8, mc.view(), true,
                                        out.data(), 10);
              }),
              msg);
  // Per head (not summed) it fits: no error. Summed over 5 heads (62720) fits too.
  EXPECT_NO_THROW(
      estimate_distances(spec, Distance::kL2, qc.data(), 8, mc.view(), false, out.data(), 10));
  EXPECT_NO_THROW(
      estimate_distances(spec, Distance::kL2, qc.data(), 5, mc.view(), true, out.data(), 10));
  EXPECT_THAT(error_message([&] {
                estimate_distances(spec, Distance::kL2, qc.data(), 6, mc.view(), true, out.data(),
                                   10);
              }),
              HasSubstr("16 bits"));
}

TEST(Estimate, BadArgumentsThrow) {
  std::mt19937 g(7);
  CodeSpec spec;
  spec.head_dim = 64;
  spec.bits = 2;
  ManualCodes mc = make_code_pool(g, 10, 16, 2, 64);
  const auto x = random_normal(g, 64, 10.0f);
  const QueryCode q2 = encode_query(spec, spec.effective_thresholds(), x.data());
  CodeSpec spec1 = spec;
  spec1.bits = 1;
  const QueryCode q1 = encode_query(spec1, spec1.effective_thresholds(), x.data());
  std::vector<uint16_t> out(64);
  // A query code of other bits than the key codes.
  EXPECT_THAT(error_message([&] {
                estimate_distances(spec, Distance::kL1, &q1, 1, mc.view(), false, out.data(), 16);
              }),
              HasSubstr("query code 0"));
  // nq = 0
  EXPECT_THAT(error_message([&] {
                estimate_distances(spec, Distance::kL1, &q2, 0, mc.view(), false, out.data(), 16);
              }),
              HasSubstr("nq = 0"));
  // slot_stride inconsistent with the page size
  PagedCodes bad = mc.view();
  bad.slot_stride = 24;
  EXPECT_THAT(error_message([&] {
                ref::estimate_distances(spec, Distance::kL1, &q2, 1, bad, false, out.data(), 16);
              }),
              HasSubstr("slot_stride"));
}

// ---- dist=ip (codes.h: encode_query_ip) ----

// Brute force of the kIP contract from compute_buckets and the query's own rounding:
//   distance = offset − Σ_i q̃_i · Σ_{m ≤ b_k(i)} Δ̃_m
void run_ip_case(const Case& c, uint32_t seed) {
  SCOPED_TRACE(c.name() + " ip");
  std::mt19937 g(seed);
  CodeSpec spec;
  spec.head_dim = c.d;
  spec.bits = c.bits;
  const auto keys = random_normal(g, size_t(c.length) * c.d, 3.0f);
  // Calibrated thresholds and bucket means, as the cache sets them.
  std::vector<float> sample(keys.begin(), keys.end());
  for (int i = 0; i < c.length; ++i) hadamard_transform(sample.data() + size_t(i) * c.d, 1, c.d);
  if (sample.size() < (size_t{1} << c.bits)) sample.resize(size_t{1} << c.bits, 0.5f);
  for (size_t i = 0; i < sample.size(); ++i) sample[i] += 1e-3f * static_cast<float>(i % 7);
  const auto t = calibrate_thresholds(sample, c.bits);
  const auto levels = bucket_centroids(sample, t);
  ManualCodes mc = make_code_pool(g, c.length, c.page_size, c.bits, c.d);
  const int stride = code_slot_stride(c.page_size);
  for (int p = 0; p * c.page_size < c.length; ++p) {
    const int n = std::min(c.page_size, c.length - p * c.page_size);
    encode_keys(spec, t, keys.data() + size_t(p) * c.page_size * c.d, DType::kF32, n, c.d,
                mc.page_ptr(p), stride, 0);
  }
  const auto qs = random_normal(g, size_t(c.nq) * c.d, 2.0f);
  const int summed = c.sum_heads ? c.nq : 1;
  std::vector<QueryCode> qc(c.nq);
  for (int h = 0; h < c.nq; ++h)
    qc[h] = encode_query_ip(spec, levels, qs.data() + size_t(h) * c.d, summed);
  std::vector<uint8_t> kb(size_t(c.length) * c.d);
  for (int i = 0; i < c.length; ++i)
    compute_buckets(spec, t, keys.data() + size_t(i) * c.d, kb.data() + size_t(i) * c.d);
  const size_t out_stride = c.length + 3;
  const int rows = c.sum_heads ? 1 : c.nq;
  std::vector<uint16_t> want(rows * out_stride, 0xBEEF);
  for (int h = 0; h < c.nq; ++h) {
    std::vector<float> x(qs.begin() + size_t(h) * c.d, qs.begin() + size_t(h + 1) * c.d);
    hadamard_transform(x.data(), 1, c.d);
    float amax = 0.f;
    for (float v : x) amax = std::max(amax, std::fabs(v));
    int cum[8] = {0};
    for (int b = 1; b < (1 << c.bits); ++b) cum[b] = cum[b - 1] + qc[h].steps[b - 1];
    long total_steps = cum[(1 << c.bits) - 1];
    ASSERT_EQ(qc[h].offset, kIpQueryMax * c.d * total_steps);
    ASSERT_LE(2L * qc[h].offset * summed, 65535);
    for (int i = 0; i < c.length; ++i) {
      long score = 0;
      for (int j = 0; j < c.d; ++j) {
        const long qi = std::lrint(std::clamp(x[j] * (kIpQueryMax / amax), -15.f, 15.f));
        score += qi * cum[kb[size_t(i) * c.d + j]];
      }
      const long dist = qc[h].offset - score;
      ASSERT_GE(dist, 0);
      uint16_t& w = want[(c.sum_heads ? 0 : h * out_stride) + i];
      w = static_cast<uint16_t>(c.sum_heads && h > 0 ? w + dist : dist);
    }
  }
  const PagedCodes view = mc.view();
  std::vector<uint16_t> ref_out(rows * out_stride, 0xBEEF);
  ref::estimate_distances(spec, Distance::kIP, qc.data(), c.nq, view, c.sum_heads, ref_out.data(),
                          out_stride);
  ASSERT_EQ(ref_out, want) << "reference";
  // The fused histogram counts distances >> kIpHistogramShift.
  const int bins = histogram_size(spec, Distance::kIP, c.nq, c.sum_heads);
  ASSERT_EQ(bins, (65535 >> kIpHistogramShift) + 1);
  std::vector<uint32_t> want_hist(size_t(rows) * bins, 0);
  for (int r = 0; r < rows; ++r)
    for (int i = 0; i < c.length; ++i)
      ++want_hist[size_t(r) * bins + (want[r * out_stride + i] >> kIpHistogramShift)];
  for_each_target([&](int64_t) {
    std::vector<uint16_t> fast(rows * out_stride, 0xBEEF);
    estimate_distances(spec, Distance::kIP, qc.data(), c.nq, view, c.sum_heads, fast.data(),
                       out_stride);
    ASSERT_EQ(fast, want) << "fast path";
    std::vector<uint16_t> fast2(rows * out_stride, 0xBEEF);
    std::vector<uint32_t> hist(size_t(rows) * bins, 0);
    estimate_distances(spec, Distance::kIP, qc.data(), c.nq, view, c.sum_heads, fast2.data(),
                       out_stride, hist.data());
    ASSERT_EQ(fast2, want) << "fast path with histogram";
    ASSERT_EQ(hist, want_hist) << "fused coarse histogram";
  });
}

TEST(EstimateIp, FastEqualsReferenceEqualsBruteForce) {
  int index = 0, ran = 0;
  for (int bits = 1; bits <= 3; ++bits)
    for (bool sum : {false, true})
      for (int length : kLengths)
        for (int page : kPageSizes)
          for (int d : kDims) {
            Case c{bits, 1 + index % 4, d, length, page, Distance::kIP, sum};
            ++index;
            if (c.length == 1000) c.nq = std::min(c.nq, std::max(1, 256 / c.d));  // time
            // Steps of one unit each must fit: 2 · 15 · d · (2^bits − 1) · heads summed.
            if (sum && 2L * kIpQueryMax * d * ((1 << bits) - 1) * c.nq > 65535) c.nq = 1;
            run_ip_case(c, 300000 + index);
            ++ran;
            if (HasFatalFailure()) return;
          }
  EXPECT_EQ(ran, 3 * 2 * 6 * 4 * 5);
}

// The contract's meaning: with a query that is already on the integer grid (max |q̂| = 15) and
// levels whose steps are whole units of a span of 15, the distance is exactly
// offset − q̂ · (level(key) − level_0): the inner product with the key as its code reconstructs it.
TEST(EstimateIp, EqualsInnerProductWithReconstructedKey) {
  std::mt19937 g(41);
  CodeSpec spec;
  spec.head_dim = 64;
  spec.bits = 2;
  spec.hadamard = false;
  const std::vector<float> t = {-1.f, 0.f, 1.f};
  // Unequal outer steps (5, 4, 6: the kernel's third binary plane) and equal ones (5, 5, 5: two
  // planes suffice); both spans 15.
  for (const std::vector<float>& levels :
       {std::vector<float>{-7.f, -2.f, 2.f, 8.f}, std::vector<float>{-7.f, -2.f, 3.f, 8.f}}) {
    const auto keys = random_normal(g, 50 * 64, 1.5f);
    ManualCodes mc = make_code_pool(g, 50, 16, 2, 64);
    for (int p = 0; p * 16 < 50; ++p)
      encode_keys(spec, t, keys.data() + size_t(p) * 16 * 64, DType::kF32,
                  std::min(16, 50 - p * 16), 64, mc.page_ptr(p), code_slot_stride(16), 0);
    std::uniform_int_distribution<int> u(-15, 15);
    std::vector<float> q(64);
    for (float& v : q) v = static_cast<float>(u(g));
    q[5] = 15.f;
    const QueryCode qc = encode_query_ip(spec, levels, q.data());
    for (int m = 0; m < 3; ++m) EXPECT_EQ(qc.steps[m], std::lround(levels[m + 1] - levels[m]));
    for_each_target([&](int64_t) {
      std::vector<uint16_t> out(50);
      estimate_distances(spec, Distance::kIP, &qc, 1, mc.view(), false, out.data(), 50);
      for (int i = 0; i < 50; ++i) {
        double dot = 0;
        for (int j = 0; j < 64; ++j)
          dot += q[j] * (levels[bucket_of(keys[size_t(i) * 64 + j], t)] - levels[0]);
        EXPECT_EQ(out[i], qc.offset - static_cast<long>(dot)) << "key " << i;
      }
    });
  }
}

TEST(EstimateIp, MixedQueryKindsAndOverflowThrow) {
  std::mt19937 g(5);
  CodeSpec spec;
  spec.head_dim = 128;
  ManualCodes mc = make_code_pool(g, 8, 8, 2, 128);
  std::vector<uint16_t> out(8);
  const auto q = random_normal(g, 128, 1.f);
  const auto levels = default_levels(spec.effective_thresholds());
  const QueryCode l1 = encode_query(spec, spec.effective_thresholds(), q.data());
  const QueryCode ip = encode_query_ip(spec, levels, q.data());
  EXPECT_THAT(error_message([&] {
                estimate_distances(spec, Distance::kIP, &l1, 1, mc.view(), false, out.data(), 8);
              }),
              HasSubstr("encoded for L1/L2"));
  EXPECT_THAT(error_message([&] {
                estimate_distances(spec, Distance::kL1, &ip, 1, mc.view(), false, out.data(), 8);
              }),
              HasSubstr("encoded for dist=ip"));
  // Per-head codes summed over 4 heads overflow 16 bits; codes encoded for 4 heads do not.
  const std::vector<QueryCode> four(4, ip);
  EXPECT_THAT(error_message([&] {
                estimate_distances(spec, Distance::kIP, four.data(), 4, mc.view(), true, out.data(),
                                   8);
              }),
              HasSubstr("do not fit 16 bits"));
  const std::vector<QueryCode> fit(4, encode_query_ip(spec, levels, q.data(), 4));
  EXPECT_NO_THROW(
      estimate_distances(spec, Distance::kIP, fit.data(), 4, mc.view(), true, out.data(), 8));
  spec.head_dim = 256;
  EXPECT_THAT(
      error_message([&] { encode_query_ip(spec, levels, random_normal(g, 256, 1.f).data(), 16); }),
      HasSubstr("do not fit 16 bits"));
}

}  // namespace
}  // namespace adamas::test
