// matvec (core/matvec.h) on every compiled SIMD target against the fp64 reference: weights of
// every dtype, widths that are not a multiple of any vector length, 1..16 rows, row ranges that
// start and end anywhere, a y stride wider than the rows.
#include "adamas/core/matvec.h"

#include <gtest/gtest.h>

#include <cmath>

#include "test_util.h"

namespace adamas::test {
namespace {

TEST(Matvec, MatchesReferenceOnEveryTarget) {
  std::mt19937 g(42);
  for_each_target([&](int64_t) {
    for (DType t : {DType::kF32, DType::kF16, DType::kBF16}) {
      for (int cols : {1, 7, 16, 33, 130, 1027}) {
        for (int n : {1, 2, 3, 4, 5, 7, 8, 16}) {
          SCOPED_TRACE(testing::Message() << dtype_name(t) << " cols " << cols << " n " << n);
          const int rows = random_int(g, 1, 40);
          const int r0 = random_int(g, 0, rows - 1), r1 = random_int(g, r0, rows);
          const size_t stride = rows + 3;
          const std::vector<float> x = random_normal(g, size_t(n) * cols);
          const std::vector<float> wf = random_normal(g, size_t(rows) * cols);
          std::vector<std::byte> w(wf.size() * dtype_size(t));
          convert_from_f32(wf.data(), w.data(), t, wf.size());
          std::vector<float> got(n * stride, NAN), want(n * stride, NAN);
          matvec(x.data(), n, cols, w.data(), t, r0, r1, got.data(), stride);
          ref::matvec(x.data(), n, cols, w.data(), t, r0, r1, want.data(), stride);
          std::vector<float> row(cols);
          for (int i = 0; i < n; ++i) {
            for (size_t r = 0; r < stride; ++r) {
              const float a = got[i * stride + r], b = want[i * stride + r];
              if (static_cast<int>(r) < r0 || static_cast<int>(r) >= r1) {
                EXPECT_TRUE(std::isnan(a)) << "row " << r << " outside the range was written";
                continue;
              }
              // fp32 accumulation in another order: bounded by the sum of |terms|.
              convert_to_f32(w.data() + r * cols * dtype_size(t), t, row.data(), cols);
              double mag = 0;
              for (int j = 0; j < cols; ++j)
                mag += std::abs(double{row[j]} * x[size_t(i) * cols + j]);
              EXPECT_NEAR(a, b, 1e-6 * mag + 1e-7) << "y[" << i << "][" << r << "]";
            }
          }
        }
      }
    }
  });
}

TEST(Matvec, RejectsBadArguments) {
  std::vector<float> x(64), y(64);
  std::vector<uint16_t> w(64);
  auto call = [&](int n, int cols, int r0, int r1, size_t stride) {
    return error_message(
        [&] { matvec(x.data(), n, cols, w.data(), DType::kBF16, r0, r1, y.data(), stride); });
  };
  EXPECT_THAT(call(0, 4, 0, 1, 4), HasSubstr("n must be in [1, 16]"));
  EXPECT_THAT(call(17, 2, 0, 1, 4), HasSubstr("got 17"));
  EXPECT_THAT(call(1, 0, 0, 1, 4), HasSubstr("cols must be ≥ 1"));
  EXPECT_THAT(call(1, 4, 2, 1, 4), HasSubstr("bad row range [2, 1)"));
  EXPECT_THAT(call(1, 4, 0, 5, 4), HasSubstr("y_stride 4 < row_end 5"));
}

}  // namespace
}  // namespace adamas::test
