// The tensor-core prefill attention (cuda/model_kernels.h) against the CPU's
// (model/ops.h prefill_attention) on the same cache bytes: a TwinCache feeds both caches the same
// appends, and both attend the same fp32 queries. The GPU rounds q and the softmax weights to the
// cache's 16-bit type for the tensor cores (the CPU keeps them fp32): for outputs of magnitude ≤ ~1
// that is ≤ ~1e-3 (f16, 11 bits) or ~1e-2 (bf16, 8 bits); a wrong mask, key or GQA head moves
// outputs by O(0.1–1).
#include <gtest/gtest.h>

#include <cmath>

#include "adamas/cuda/model_kernels.h"
#include "adamas/model/ops.h"
#include "cuda/cuda_test_util.h"

namespace adamas::test {
namespace {

struct PrefillCase {
  int head_dim, q_heads, kv_heads, page_size, prefix, n;
  DType dtype;
};

void PrintTo(const PrefillCase& c, std::ostream* os) {
  *os << "d " << c.head_dim << ", heads " << c.q_heads << "/" << c.kv_heads << ", page "
      << c.page_size << ", prefix " << c.prefix << ", n " << c.n << ", " << dtype_name(c.dtype);
}

class PrefillAttention : public CudaTest, public ::testing::WithParamInterface<PrefillCase> {};

TEST_P(PrefillAttention, MatchesCpuOnTheSameCache) {
  const PrefillCase c = GetParam();
  CacheConfig cc;
  cc.num_layers = 1;
  cc.num_kv_heads = c.kv_heads;
  cc.head_dim = c.head_dim;
  cc.page_size = c.page_size;
  cc.dtype = c.dtype;
  cc.store_page_minmax = false;
  cc.num_pages = pages_needed(cc, {c.prefix + c.n, 50}, 4);
  TwinCache twin(cc, DType::kF32, 1000 + c.head_dim + c.n);
  const int other = twin.add_sequence(), s = twin.add_sequence();
  twin.fill(0, {other, s}, {50, c.prefix});  // interleaved pages
  twin.append(0, s, c.n);                    // the chunk being prefilled
  const int length = c.prefix + c.n;

  FastRng rng(7 + c.prefix);
  const std::vector<float> q = fast_normal(rng, size_t(c.n) * c.q_heads * c.head_dim);
  std::vector<float> want(q.size());
  model::prefill_attention(*twin.cpu, 0, twin.cpu_seqs[s], q.data(), c.n, c.q_heads, want.data(),
                           1);

  const BatchTables t = twin.gpu->page_tables().batch(twin.gpu_ids({s}), 0);
  ASSERT_EQ(t.lengths[0], length);
  auto indptr = to_device(t.page_indptr), indices = to_device(t.page_indices),
       lengths = to_device(t.lengths);
  const BatchView view{indptr.data(), indices.data(), lengths.data(), 1, length};
  auto qd = to_device(q);
  DeviceBuffer<float> out(q.size());
  out.fill_bytes(0xff);  // NaN: every element must be written
  cuda::prefill_attention(twin.gpu->layer(0), view, qd.data(), c.n, c.q_heads,
                          1.0f / std::sqrt(static_cast<float>(c.head_dim)), out.data(), nullptr);
  device_sync();
  const std::vector<float> got = download_array(out.data(), q.size());
  const double tol = c.dtype == DType::kF16 ? 4e-3 : 3e-2;
  double max_err = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_TRUE(std::isfinite(got[i])) << "output " << i << " not written or not finite";
    max_err = std::max(max_err, std::abs(double{got[i]} - want[i]));
  }
  EXPECT_LE(max_err, tol) << "max |Δ| against the CPU";
}

std::vector<PrefillCase> cases() {
  std::vector<PrefillCase> v;
  for (DType t : {DType::kF16, DType::kBF16}) {
    v.push_back({128, 4, 4, 16, 0, 1, t});     // one token, empty prefix
    v.push_back({128, 4, 2, 64, 0, 130, t});   // GQA 2, rows past one block
    v.push_back({128, 8, 2, 48, 301, 77, t});  // page size not a power of two, prefix
    v.push_back({64, 4, 1, 16, 1000, 64, t});  // GQA 4, one full block after a long prefix
    v.push_back({256, 2, 2, 1, 90, 33, t});    // page size 1
    v.push_back({32, 6, 3, 64, 5, 200, t});
    v.push_back({16, 2, 1, 7, 63, 1, t});  // one token after a prefix: decode-like
  }
  return v;
}

INSTANTIATE_TEST_SUITE_P(Shapes, PrefillAttention, ::testing::ValuesIn(cases()),
                         [](const auto& info) {
                           const PrefillCase& c = info.param;
                           return "d" + std::to_string(c.head_dim) + "_h" +
                                  std::to_string(c.q_heads) + "x" + std::to_string(c.kv_heads) +
                                  "_p" + std::to_string(c.page_size) + "_pre" +
                                  std::to_string(c.prefix) + "_n" + std::to_string(c.n) + "_" +
                                  std::string(dtype_name(c.dtype));
                         });

}  // namespace
}  // namespace adamas::test
