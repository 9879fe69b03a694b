// hadamard.h: the fast transform (every SIMD target) and the reference against the explicit
// Sylvester matrix built by recursion; orthonormality, involution, argument errors.
#include "adamas/core/hadamard.h"

#include "test_util.h"

namespace adamas::test {
namespace {

constexpr int kDims[] = {16, 32, 64, 128, 256};

// rows × d random floats at stride `stride`; the gaps between rows hold a sentinel.
constexpr float kSentinel = -12345.678f;
std::vector<float> strided_rows(std::mt19937& g, int rows, int d, size_t stride) {
  std::vector<float> data(rows * stride, kSentinel);
  for (int r = 0; r < rows; ++r) {
    const auto x = random_normal(g, d, 3.0f);
    std::copy(x.begin(), x.end(), data.begin() + r * stride);
  }
  return data;
}

void expect_matches_matrix(const std::vector<float>& in, const std::vector<float>& out, int rows,
                           int d, size_t stride) {
  const auto H = sylvester_matrix(d);
  for (int r = 0; r < rows; ++r) {
    const auto want = hadamard_double(in.data() + r * stride, d, H);
    std::vector<float> wantf(want.begin(), want.end());
    EXPECT_LT(rel_error(out.data() + r * stride, wantf.data(), d), 1e-6) << "row " << r;
  }
  for (size_t i = 0; i < in.size(); ++i) {
    if (i % stride >= static_cast<size_t>(d)) {
      ASSERT_EQ(out[i], kSentinel) << "padding at " << i << " was written";
    }
  }
}

TEST(Hadamard, FastMatchesExplicitMatrixOnEveryTarget) {
  for_each_target([](int64_t) {
    for (int d : kDims) {
      for (size_t stride : {size_t(d), size_t(d) + 7, size_t(2 * d) + 1}) {
        SCOPED_TRACE("d = " + std::to_string(d) + ", row_stride = " + std::to_string(stride));
        std::mt19937 g(1000 + d + stride);
        const int rows = 5;
        const auto in = strided_rows(g, rows, d, stride);
        auto out = in;
        hadamard_transform(out.data(), rows, d, stride);
        expect_matches_matrix(in, out, rows, d, stride);
      }
    }
  });
}

TEST(Hadamard, ReferenceMatchesExplicitMatrix) {
  for (int d : kDims) {
    SCOPED_TRACE("d = " + std::to_string(d));
    std::mt19937 g(2000 + d);
    const size_t stride = d + 3;
    const int rows = 4;
    const auto in = strided_rows(g, rows, d, stride);
    auto out = in;
    ref::hadamard_transform(out.data(), rows, d, stride);
    expect_matches_matrix(in, out, rows, d, stride);
  }
}

TEST(Hadamard, BasisVectorsGiveMatrixRows) {
  for_each_target([](int64_t) {
    for (int d : kDims) {
      const auto H = sylvester_matrix(d);
      std::vector<float> x(size_t(d) * d, 0.0f);
      for (int j = 0; j < d; ++j) x[size_t(j) * d + j] = 1.0f;
      hadamard_transform(x.data(), d, d);
      for (int j = 0; j < d; ++j)
        for (int i = 0; i < d; ++i)
          ASSERT_NEAR(x[size_t(j) * d + i], H[size_t(j) * d + i], 1e-6)
              << d << " " << j << " " << i;
    }
  });
}

TEST(Hadamard, OrthonormalPreservesDotProductsAndNorms) {
  for_each_target([](int64_t) {
    for (int d : kDims) {
      SCOPED_TRACE("d = " + std::to_string(d));
      std::mt19937 g(3000 + d);
      for (int trial = 0; trial < 10; ++trial) {
        auto q = random_normal(g, d, 2.0f);
        auto k = random_normal(g, d, 2.0f);
        double qk = 0, qq = 0, kk = 0;
        for (int i = 0; i < d; ++i) {
          qk += double{q[i]} * k[i];
          qq += double{q[i]} * q[i];
          kk += double{k[i]} * k[i];
        }
        hadamard_transform(q.data(), 1, d);
        hadamard_transform(k.data(), 1, d);
        double qk2 = 0, qq2 = 0;
        for (int i = 0; i < d; ++i) {
          qk2 += double{q[i]} * k[i];
          qq2 += double{q[i]} * q[i];
        }
        EXPECT_NEAR(qk2, qk, 1e-5 * std::sqrt(qq * kk)) << "trial " << trial;
        EXPECT_NEAR(qq2, qq, 1e-5 * qq) << "trial " << trial;
      }
    }
  });
}

TEST(Hadamard, AppliedTwiceIsIdentity) {
  for_each_target([](int64_t) {
    for (int d : kDims) {
      SCOPED_TRACE("d = " + std::to_string(d));
      std::mt19937 g(4000 + d);
      const size_t stride = d + 5;
      const auto in = strided_rows(g, 6, d, stride);
      // Compare the rows only (the padding holds a large sentinel that would dominate norms).
      auto rows_of = [&](const std::vector<float>& v) {
        std::vector<float> r;
        for (int i = 0; i < 6; ++i)
          r.insert(r.end(), v.begin() + i * stride, v.begin() + i * stride + d);
        return r;
      };
      auto x = in;
      hadamard_transform(x.data(), 6, d, stride);
      EXPECT_GT(rel_error(rows_of(x), rows_of(in)), 0.1);  // it did something
      hadamard_transform(x.data(), 6, d, stride);
      EXPECT_LT(rel_error(rows_of(x), rows_of(in)), 1e-6);
      for (size_t i = 0; i < x.size(); ++i) {
        if (i % stride >= size_t(d)) {
          ASSERT_EQ(x[i], kSentinel);
        }
      }
      auto y = in;
      ref::hadamard_transform(y.data(), 6, d, stride);
      ref::hadamard_transform(y.data(), 6, d, stride);
      EXPECT_LT(rel_error(rows_of(y), rows_of(in)), 1e-6);
    }
  });
}

TEST(Hadamard, ZeroRowsIsANoOp) {
  for_each_target([](int64_t) {
    float x[16] = {1, 2, 3};
    hadamard_transform(x, 0, 16, 16);
    EXPECT_EQ(x[0], 1);
    EXPECT_EQ(x[1], 2);
  });
}

TEST(Hadamard, NonPowerOfTwoOrOutOfRangeDimThrows) {
  std::vector<float> buf(4096, 1.0f);
  for (int d : {100, 8, 512, 0, 1, 2, 24, 48, 96, 192, 255, 257, 1024, -16}) {
    SCOPED_TRACE("d = " + std::to_string(d));
    const auto matches = AllOf(HasSubstr("power of two"), HasSubstr("got " + std::to_string(d)));
    for_each_target([&](int64_t) {
      EXPECT_THAT(error_message([&] { hadamard_transform(buf.data(), 1, d, 1024); }), matches);
    });
    EXPECT_THAT(error_message([&] { ref::hadamard_transform(buf.data(), 1, d, 1024); }), matches);
    EXPECT_THAT(error_message([&] { check_head_dim(d); }), matches);
  }
  EXPECT_NO_THROW(check_head_dim(16));
  EXPECT_NO_THROW(check_head_dim(256));
}

TEST(Hadamard, RowStrideSmallerThanDimThrows) {
  std::vector<float> buf(512, 1.0f);
  for_each_target([&](int64_t) {
    EXPECT_THAT(error_message([&] { hadamard_transform(buf.data(), 2, 64, 63); }),
                AllOf(HasSubstr("row_stride"), HasSubstr("63")));
  });
  EXPECT_THAT(error_message([&] { ref::hadamard_transform(buf.data(), 2, 64, 32); }),
              AllOf(HasSubstr("row_stride"), HasSubstr("32")));
}

}  // namespace
}  // namespace adamas::test
