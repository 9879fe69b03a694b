// attention.h: dense / sparse decode attention and key_scores, fast (every SIMD target) vs the
// reference vs a double-precision brute force on the same stored (rounded) K/V, over dtypes,
// GQA group sizes, lengths, page sizes and head dims; shuffled page tables; errors.
#include "adamas/core/attention.h"

#include "test_util.h"

namespace adamas::test {
namespace {

constexpr int kDims[] = {16, 32, 64, 128, 256};
constexpr int kGroups[] = {1, 2, 4, 8};
constexpr int kLengths[] = {1, 2, 17, 1000};
constexpr int kPageSizes[] = {1, 16, 64};
constexpr DType kDTypes[] = {DType::kF32, DType::kF16, DType::kBF16};

struct Case {
  DType dtype;
  int nq, d, length, page_size;
  std::string name() const {
    return std::string(dtype_str(dtype)) + " nq " + std::to_string(nq) + " d " + std::to_string(d) +
           " length " + std::to_string(length) + " page " + std::to_string(page_size);
  }
};

// Visits dtype × length × page size × head_dim with nq cycling through 1, 2, 4, 8.
template <class F>
void for_each_case(F&& f) {
  int index = 0;
  for (DType dt : kDTypes)
    for (int length : kLengths)
      for (int page : kPageSizes)
        for (int d : kDims) {
          Case c{dt, kGroups[index % 4], d, length, page};
          ++index;
          if (length == 1000) c.nq = std::min(c.nq, std::max(1, 1024 / c.d));  // time
          SCOPED_TRACE(c.name());
          f(c, 40000u + index);
          if (::testing::Test::HasFatalFailure()) return;
        }
}

std::vector<float> brute_dense(const ManualKV& m, const std::vector<float>& q, int nq,
                               const std::vector<int32_t>& idx) {
  std::vector<float> out;
  const double scale = 1.0 / std::sqrt(double(m.head_dim));
  for (int h = 0; h < nq; ++h) {
    const auto o = brute_attention(q.data() + size_t(h) * m.head_dim, m.keys.data(),
                                   m.values.data(), m.head_dim, idx, scale);
    out.insert(out.end(), o.begin(), o.end());
  }
  return out;
}

TEST(Attention, DenseFastEqualsReferenceEqualsBruteForce) {
  for_each_case([](const Case& c, uint32_t seed) {
    const ManualKV m = make_manual_kv(seed, c.length, c.page_size, c.d, c.dtype);
    std::mt19937 g(seed + 1);
    const auto q = random_normal(g, size_t(c.nq) * c.d, 1.0f);
    const float scale = 1.0f / std::sqrt(float(c.d));
    const auto want = brute_dense(m, q, c.nq, iota_positions(c.length));
    std::vector<float> ref_out(size_t(c.nq) * c.d);
    ref::dense_decode_attention(q.data(), c.nq, m.view(), scale, ref_out.data());
    EXPECT_LT(rel_error(ref_out, want), 1e-6) << "reference vs brute force";
    for_each_target([&](int64_t) {
      std::vector<float> out(size_t(c.nq) * c.d, NAN);
      dense_decode_attention(q.data(), c.nq, m.view(), scale, out.data());
      EXPECT_LT(rel_error(out, ref_out), 1e-5) << "fast vs reference";
    });
  });
}

TEST(Attention, SparseFastEqualsReferenceEqualsBruteForce) {
  for_each_case([](const Case& c, uint32_t seed) {
    const ManualKV m = make_manual_kv(seed, c.length, c.page_size, c.d, c.dtype);
    std::mt19937 g(seed + 2);
    const auto q = random_normal(g, size_t(c.nq) * c.d, 1.0f);
    const float scale = 1.0f / std::sqrt(float(c.d));
    // A random subset of distinct positions, in random order (the last one always included).
    auto idx = iota_positions(c.length);
    std::shuffle(idx.begin(), idx.end(), g);
    idx.resize(std::max(1, random_int(g, 1, c.length)));
    const auto want = brute_dense(m, q, c.nq, idx);
    std::vector<float> ref_out(size_t(c.nq) * c.d);
    ref::sparse_decode_attention(q.data(), c.nq, m.view(), idx.data(), int(idx.size()), scale,
                                 ref_out.data());
    EXPECT_LT(rel_error(ref_out, want), 1e-6) << "reference vs brute force";
    for_each_target([&](int64_t) {
      std::vector<float> out(size_t(c.nq) * c.d, NAN);
      sparse_decode_attention(q.data(), c.nq, m.view(), idx.data(), int(idx.size()), scale,
                              out.data());
      EXPECT_LT(rel_error(out, ref_out), 1e-5) << "fast vs reference";
    });
  });
}

TEST(Attention, SparseOverAllPositionsEqualsDense) {
  for_each_case([](const Case& c, uint32_t seed) {
    const ManualKV m = make_manual_kv(seed, c.length, c.page_size, c.d, c.dtype);
    std::mt19937 g(seed + 3);
    const auto q = random_normal(g, size_t(c.nq) * c.d, 1.0f);
    const float scale = 1.0f / std::sqrt(float(c.d));
    auto idx = iota_positions(c.length);
    auto shuffled = idx;
    std::shuffle(shuffled.begin(), shuffled.end(), g);
    for_each_target([&](int64_t) {
      std::vector<float> dense(size_t(c.nq) * c.d), sparse(dense.size()), sparse2(dense.size());
      dense_decode_attention(q.data(), c.nq, m.view(), scale, dense.data());
      sparse_decode_attention(q.data(), c.nq, m.view(), idx.data(), c.length, scale, sparse.data());
      sparse_decode_attention(q.data(), c.nq, m.view(), shuffled.data(), c.length, scale,
                              sparse2.data());
      EXPECT_LT(rel_error(sparse, dense), 1e-6) << "same order";
      EXPECT_LT(rel_error(sparse2, dense), 1e-5) << "shuffled order (fp32 summation order)";
    });
  });
}

// A GQA group of nq heads (any nq, also those that split into blocks of 8, 4, 2 and 1 heads)
// gives the same as nq single-head calls and as the reference; key_scores likewise.
TEST(Attention, GroupEqualsSeparateHeads) {
  for (DType dt : kDTypes) {
    const ManualKV m = make_manual_kv(77, 300, 16, 64, dt);
    std::mt19937 g(78);
    const auto idx = [&] {
      auto v = iota_positions(300);
      std::shuffle(v.begin(), v.end(), g);
      v.resize(70);
      return v;
    }();
    for (int nq : {1, 3, 5, 6, 7, 9, 12, 15, 16, 24}) {
      SCOPED_TRACE(std::string(dtype_str(dt)) + " nq " + std::to_string(nq));
      const auto q = random_normal(g, size_t(nq) * 64, 1.0f);
      const float scale = 1.0f / 8.0f;
      std::vector<float> ref_dense(nq * 64), ref_sparse(nq * 64), ref_scores(nq * 300);
      ref::dense_decode_attention(q.data(), nq, m.view(), scale, ref_dense.data());
      ref::sparse_decode_attention(q.data(), nq, m.view(), idx.data(), 70, scale,
                                   ref_sparse.data());
      ref::key_scores(q.data(), nq, m.view(), ref_scores.data(), 300);
      for_each_target([&](int64_t) {
        std::vector<float> group(nq * 64), sparse(nq * 64), single(64), scores(nq * 300);
        dense_decode_attention(q.data(), nq, m.view(), scale, group.data());
        sparse_decode_attention(q.data(), nq, m.view(), idx.data(), 70, scale, sparse.data());
        key_scores(q.data(), nq, m.view(), scores.data(), 300);
        EXPECT_LT(rel_error(group, ref_dense), 1e-5);
        EXPECT_LT(rel_error(sparse, ref_sparse), 1e-5);
        EXPECT_LT(rel_error(scores, ref_scores), 1e-5);
        for (int h = 0; h < nq; ++h) {
          dense_decode_attention(q.data() + h * 64, 1, m.view(), scale, single.data());
          EXPECT_LT(rel_error(group.data() + h * 64, single.data(), 64), 1e-5) << "head " << h;
          EXPECT_LT(
              rel_error(
                  group.data() + h * 64,
                  brute_dense(m, std::vector<float>(q.begin() + h * 64, q.begin() + (h + 1) * 64),
                              1, iota_positions(300))
                      .data(),
                  64),
              1e-5)
              << "head " << h;
        }
      });
    }
  }
}

// Scores far beyond exp's range: the max-subtracted softmax keeps everything finite.
TEST(Attention, LargeScoresAreStable) {
  for (DType dt : kDTypes) {
    SCOPED_TRACE(dtype_str(dt));
    const ManualKV m = make_manual_kv(90, 200, 16, 64, dt, /*sigma=*/30.0f);
    std::mt19937 g(91);
    const auto q = random_normal(g, 2 * 64, 30.0f);  // scores ~ ±7000
    const float scale = 1.0f / 8.0f;
    std::vector<float> ref_out(2 * 64);
    ref::dense_decode_attention(q.data(), 2, m.view(), scale, ref_out.data());
    EXPECT_LT(rel_error(ref_out, brute_dense(m, q, 2, iota_positions(200))), 1e-6);
    for_each_target([&](int64_t) {
      std::vector<float> out(2 * 64);
      dense_decode_attention(q.data(), 2, m.view(), scale, out.data());
      for (float x : out) ASSERT_TRUE(std::isfinite(x));
      EXPECT_LT(rel_error(out, ref_out), 1e-5);
    });
  }
}

TEST(Attention, KeyScoresFastEqualsReferenceEqualsBruteForce) {
  for_each_case([](const Case& c, uint32_t seed) {
    const ManualKV m = make_manual_kv(seed, c.length, c.page_size, c.d, c.dtype);
    std::mt19937 g(seed + 4);
    const auto q = random_normal(g, size_t(c.nq) * c.d, 1.0f);
    const size_t stride = c.length + 5;
    std::vector<float> want(c.nq * stride, -99.f);
    for (int h = 0; h < c.nq; ++h)
      for (int t = 0; t < c.length; ++t) {
        double s = 0;
        for (int i = 0; i < c.d; ++i) s += double{q[size_t(h) * c.d + i]} * m.key(t)[i];
        want[h * stride + t] = static_cast<float>(s);
      }
    std::vector<float> ref_out(c.nq * stride, -99.f);
    ref::key_scores(q.data(), c.nq, m.view(), ref_out.data(), stride);
    EXPECT_LT(rel_error(ref_out, want), 1e-6);
    for_each_target([&](int64_t) {
      std::vector<float> out(c.nq * stride, -99.f);
      key_scores(q.data(), c.nq, m.view(), out.data(), stride);
      EXPECT_LT(rel_error(out, want), 1e-5);
      for (int h = 0; h < c.nq; ++h)
        for (size_t t = c.length; t < stride; ++t)
          ASSERT_EQ(out[h * stride + t], -99.f) << "padding written, head " << h;
      // each score individually close (relative to the magnitudes involved)
      for (int h = 0; h < c.nq; ++h)
        for (int t = 0; t < c.length; ++t)
          ASSERT_NEAR(out[h * stride + t], want[h * stride + t], 1e-4 * std::sqrt(double(c.d)));
    });
  });
}

// Special f16 values stored in the cache (an fp16 K/V overflows to ±Inf above 65504) are read as
// what they are on every target: ±Inf stays ±Inf, NaN stays NaN, subnormals keep their value —
// the fast path must agree with the reference (which converts with f16_to_f32).
TEST(Attention, SpecialHalfValuesReadAsStoredOnEveryTarget) {
  const int d = 16, P = 4, len = 4;
  for (DType dt : {DType::kF16, DType::kBF16}) {
    SCOPED_TRACE(dtype_str(dt));
    const bool h = dt == DType::kF16;
    const uint16_t pinf = h ? 0x7c00 : 0x7f80, ninf = h ? 0xfc00 : 0xff80,
                   nan = h ? 0x7e00 : 0x7fc0;
    const uint16_t sub1 = 0x0001, sub2 = 0x83ff, one = h ? 0x3c00 : 0x3f80;
    std::vector<uint16_t> k(P * d, one), v(P * d, one);
    k[0 * d + 0] = sub1;
    k[0 * d + 1] = sub2;
    k[1 * d + 0] = pinf;
    k[2 * d + 3] = ninf;
    k[3 * d + 5] = nan;
    const int32_t page = 0;
    PagedKV kv;
    kv.k_pool = reinterpret_cast<const std::byte*>(k.data());
    kv.v_pool = reinterpret_cast<const std::byte*>(v.data());
    kv.page_stride = P * d * 2;
    kv.page_ids = &page;
    kv.page_size = P;
    kv.head_dim = d;
    kv.length = len;
    kv.dtype = dt;
    std::vector<float> q(d, 1.0f);
    q[1] = 1e6f;  // makes the subnormal's contribution visible: 1e6 · −(1023 · 2^−24)
    std::vector<float> want(len);
    ref::key_scores(q.data(), 1, kv, want.data(), len);
    ASSERT_TRUE(std::isinf(want[1]) && want[1] > 0);
    ASSERT_TRUE(std::isinf(want[2]) && want[2] < 0);
    ASSERT_TRUE(std::isnan(want[3]));
    // Values: an Inf in row 2 makes the reference output Inf/NaN in that column.
    std::vector<uint16_t> v2 = v;
    v2[2 * d + 7] = pinf;
    PagedKV kv2 = kv;
    kv2.v_pool = reinterpret_cast<const std::byte*>(v2.data());
    kv2.length = 3;
    std::vector<float> want_out(d);
    ref::dense_decode_attention(q.data(), 1, kv2, 0.25f, want_out.data());
    for_each_target([&](int64_t) {
      std::vector<float> got(len);
      key_scores(q.data(), 1, kv, got.data(), len);
      for (int t = 0; t < len; ++t) {
        if (std::isnan(want[t])) {
          EXPECT_TRUE(std::isnan(got[t])) << "t " << t << ": " << got[t];
        } else if (std::isinf(want[t])) {
          EXPECT_EQ(got[t], want[t]) << "t " << t;
        } else {
          EXPECT_NEAR(got[t], want[t], 1e-6 * std::abs(want[t]) + 1e-6) << "t " << t;
        }
      }
      std::vector<float> out(d);
      dense_decode_attention(q.data(), 1, kv2, 0.25f, out.data());
      for (int j = 0; j < d; ++j) {
        if (std::isnan(want_out[j])) {
          EXPECT_TRUE(std::isnan(out[j])) << "column " << j << ": " << out[j];
        } else if (std::isinf(want_out[j])) {
          EXPECT_EQ(out[j], want_out[j]) << "column " << j;
        } else {
          EXPECT_NEAR(out[j], want_out[j], 1e-5) << "column " << j;
        }
      }
    });
  }
}

TEST(Attention, BadInputsThrowNamingTheProblem) {
  const ManualKV m = make_manual_kv(5, 10, 4, 32, DType::kF32);
  std::vector<float> q(2 * 32, 1.0f), out(2 * 32), scores(64);
  const float scale = 0.1f;
  using SparseFn = void (*)(const float*, int, const PagedKV&, const int32_t*, int, float, float*);
  using DenseFn = void (*)(const float*, int, const PagedKV&, float, float*);
  using ScoresFn = void (*)(const float*, int, const PagedKV&, float*, size_t);
  const std::pair<const char*, SparseFn> sparse_fns[] = {{"fast", &sparse_decode_attention},
                                                         {"ref", &ref::sparse_decode_attention}};
  const std::pair<const char*, DenseFn> dense_fns[] = {{"fast", &dense_decode_attention},
                                                       {"ref", &ref::dense_decode_attention}};
  const std::pair<const char*, ScoresFn> score_fns[] = {{"fast", &key_scores},
                                                        {"ref", &ref::key_scores}};
  for (const auto& entry : sparse_fns) {  // not [name, fn]: clang 14 cannot capture bindings
    const auto fn = entry.second;
    SCOPED_TRACE(entry.first);
    const int32_t past_end[] = {0, 3, 10};
    EXPECT_THAT(error_message([&] { fn(q.data(), 2, m.view(), past_end, 3, scale, out.data()); }),
                AllOf(HasSubstr("index 10"), HasSubstr("outside"), HasSubstr("[0, 10)")));
    const int32_t negative[] = {-1};
    EXPECT_THAT(error_message([&] { fn(q.data(), 2, m.view(), negative, 1, scale, out.data()); }),
                AllOf(HasSubstr("index -1"), HasSubstr("outside")));
    EXPECT_THAT(error_message([&] { fn(q.data(), 2, m.view(), past_end, 0, scale, out.data()); }),
                AllOf(HasSubstr("at least one index"), HasSubstr("got 0")));
    PagedKV empty = m.view();
    empty.length = 0;
    EXPECT_THAT(error_message([&] { fn(q.data(), 2, empty, past_end, 1, scale, out.data()); }),
                HasSubstr("empty sequence"));
    EXPECT_THAT(error_message([&] { fn(q.data(), 0, m.view(), past_end, 1, scale, out.data()); }),
                HasSubstr("nq = 0"));
  }
  for (const auto& entry : dense_fns) {  // not [name, fn]: clang 14 cannot capture bindings
    const auto fn = entry.second;
    SCOPED_TRACE(entry.first);
    PagedKV empty = m.view();
    empty.length = 0;
    EXPECT_THAT(error_message([&] { fn(q.data(), 2, empty, scale, out.data()); }),
                AllOf(HasSubstr("empty sequence"), HasSubstr("length 0")));
    PagedKV negative = m.view();
    negative.length = -3;
    EXPECT_THAT(error_message([&] { fn(q.data(), 2, negative, scale, out.data()); }),
                HasSubstr("empty sequence"));
  }
  for (const auto& entry : score_fns) {  // not [name, fn]: clang 14 cannot capture bindings
    const auto fn = entry.second;
    SCOPED_TRACE(entry.first);
    PagedKV empty = m.view();
    empty.length = 0;
    EXPECT_THAT(error_message([&] { fn(q.data(), 1, empty, scores.data(), 16); }),
                HasSubstr("empty sequence"));
  }
}

}  // namespace
}  // namespace adamas::test
