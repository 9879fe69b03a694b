// kernels.h dense_decode_attention / sparse_decode_attention vs adamas::ref::dense_decode_attention
// / ref::sparse_decode_attention on CPU views over the same K/V pools: f16 and bf16, GQA groups
// 1, 2, 4, 8 and 3 (and 12, 16 for the tensor-core dense kernel), head_dim 16..256 (dense at 64
// and 128 runs on tensor cores, at the others on CUDA cores), lengths 1, 3, 63, 64, 65, 1000
// (100000 in the Large test: many splits), page sizes incl. ones not a multiple of 8, sparse per
// query head and with shared_rows, index sets of one position, every position and random ones.
// Tolerance: fp32 accumulation in another order (attention_close). Outputs are poisoned with NaN
// first.
#include "adamas/core/attention.h"

#include "cuda_test_util.h"

namespace adamas::test {
namespace {

class CudaAttention : public CudaTest {};

constexpr int kDims[] = {16, 32, 64, 128, 256};
constexpr int kGroups[] = {1, 2, 4, 8, 3};
constexpr int kPages[] = {16, 5, 64, 1, 13};

std::string row_name(int b, int qh, int len) {
  return "sequence " + std::to_string(b) + " (length " + std::to_string(len) + ") q head " +
         std::to_string(qh);
}

// Dense attention of the whole batch of `t` with `group` query heads per KV head.
std::vector<float> gpu_dense(TestLayer& t, int group, const std::vector<float>& q,
                             cuda::AttentionWorkspace& ws) {
  const int nqh = t.shape.kv_heads * group, B = t.batch_size(), d = t.d();
  auto q_dev = to_device(q);
  DeviceBuffer<float> out(size_t(B) * nqh * d);
  out.fill_bytes(0xff);
  cuda::dense_decode_attention(t.layer(), t.batch(), q_dev.data(), nqh, 1.0f / std::sqrt(float(d)),
                               out.data(), ws, nullptr);
  return download_array(out.data(), size_t(B) * nqh * d);
}

void check_dense(TestLayer& t, int group, float q_sigma, uint64_t seed,
                 cuda::AttentionWorkspace& ws) {
  SCOPED_TRACE(t.shape.name() + " group " + std::to_string(group) + " dense");
  FastRng r(seed);
  const int H = t.shape.kv_heads, nqh = H * group, B = t.batch_size(), d = t.d();
  const auto q = fast_normal(r, size_t(B) * nqh * d, q_sigma);
  const auto got = gpu_dense(t, group, q, ws);
  const float scale = 1.0f / std::sqrt(float(d));
  std::vector<float> want(size_t(group) * d);
  for (int b = 0; b < B; ++b)
    for (int j = 0; j < H; ++j) {
      const size_t at = (size_t(b) * nqh + size_t(j) * group) * d;
      ref::dense_decode_attention(q.data() + at, group, t.kv(b, j), scale, want.data());
      for (int i = 0; i < group; ++i)
        EXPECT_TRUE(
            attention_close(got.data() + at + size_t(i) * d, want.data() + size_t(i) * d, d))
            << row_name(b, j * group + i, t.lengths[b]);
    }
}

struct SparseRows {
  std::vector<std::vector<int32_t>> idx;  // per row
  size_t stride = 0;
  int max_count = 0;
};

// Random sorted unique index rows: one position, every position, random sizes, ≤ 64.
SparseRows make_rows(FastRng& r, const std::vector<int>& row_lengths) {
  SparseRows s;
  for (size_t row = 0; row < row_lengths.size(); ++row) {
    const int len = row_lengths[row];
    int count = 1;
    switch ((row + r.next() % 2) % 5) {
      case 0:
        count = 1;
        break;
      case 1:
        count = len;
        break;
      case 2:
        count = r.uniform_int(1, len);
        break;
      case 3:
        count = std::min(len, 64);
        break;
      case 4:
        count = std::max(1, len / 2);
        break;
    }
    s.idx.push_back(random_subset(r, len, count));
    s.max_count = std::max(s.max_count, count);
  }
  s.stride = size_t(s.max_count) + 2;
  return s;
}

// Sparse attention on the GPU over `rows`; the index padding holds valid but wrong positions.
std::vector<float> gpu_sparse(TestLayer& t, int group, bool shared, const std::vector<float>& q,
                              const SparseRows& rows, FastRng& r, cuda::AttentionWorkspace& ws) {
  const int H = t.shape.kv_heads, nqh = H * group, B = t.batch_size(), d = t.d();
  const int R = shared ? H : nqh;
  std::vector<int32_t> indices(rows.idx.size() * rows.stride), counts;
  for (size_t row = 0; row < rows.idx.size(); ++row) {
    const int len = t.lengths[row / R];
    for (size_t i = 0; i < rows.stride; ++i)
      indices[row * rows.stride + i] =
          i < rows.idx[row].size() ? rows.idx[row][i] : r.uniform_int(0, len - 1);
    counts.push_back(static_cast<int32_t>(rows.idx[row].size()));
  }
  auto q_dev = to_device(q);
  auto idx_dev = to_device(indices);
  auto cnt_dev = to_device(counts);
  DeviceBuffer<float> out(size_t(B) * nqh * d);
  out.fill_bytes(0xff);
  cuda::SparseArgs a;
  a.indices = idx_dev.data();
  a.index_stride = rows.stride;
  a.counts = cnt_dev.data();
  a.max_count = rows.max_count;
  a.shared_rows = shared;
  cuda::sparse_decode_attention(t.layer(), t.batch(), q_dev.data(), nqh, a,
                                1.0f / std::sqrt(float(d)), out.data(), ws, nullptr);
  return download_array(out.data(), size_t(B) * nqh * d);
}

void check_sparse(TestLayer& t, int group, bool shared, float q_sigma, uint64_t seed,
                  cuda::AttentionWorkspace& ws) {
  SCOPED_TRACE(t.shape.name() + " group " + std::to_string(group) +
               (shared ? " sparse shared rows" : " sparse per head"));
  FastRng r(seed);
  const int H = t.shape.kv_heads, nqh = H * group, B = t.batch_size(), d = t.d();
  const int R = shared ? H : nqh;
  const auto q = fast_normal(r, size_t(B) * nqh * d, q_sigma);
  std::vector<int> row_lengths;
  for (int row = 0; row < B * R; ++row) row_lengths.push_back(t.lengths[row / R]);
  const SparseRows rows = make_rows(r, row_lengths);
  const auto got = gpu_sparse(t, group, shared, q, rows, r, ws);
  const float scale = 1.0f / std::sqrt(float(d));
  std::vector<float> want(size_t(group) * d);
  for (int b = 0; b < B; ++b)
    for (int j = 0; j < H; ++j) {
      const size_t at = (size_t(b) * nqh + size_t(j) * group) * d;
      if (shared) {
        const auto& idx = rows.idx[size_t(b) * H + j];
        ref::sparse_decode_attention(q.data() + at, group, t.kv(b, j), idx.data(),
                                     static_cast<int>(idx.size()), scale, want.data());
        for (int i = 0; i < group; ++i)
          EXPECT_TRUE(
              attention_close(got.data() + at + size_t(i) * d, want.data() + size_t(i) * d, d))
              << row_name(b, j * group + i, t.lengths[b]) << ", " << idx.size() << " positions";
      } else {
        for (int i = 0; i < group; ++i) {
          const int qh = j * group + i;
          const auto& idx = rows.idx[size_t(b) * nqh + qh];
          ref::sparse_decode_attention(q.data() + at + size_t(i) * d, 1, t.kv(b, j), idx.data(),
                                       static_cast<int>(idx.size()), scale, want.data());
          EXPECT_TRUE(attention_close(got.data() + at + size_t(i) * d, want.data(), d))
              << row_name(b, qh, t.lengths[b]) << ", " << idx.size() << " positions";
        }
      }
    }
}

template <class F>
void for_each_shape(F&& f) {
  int index = 0;
  for (DType dt : {DType::kF16, DType::kBF16})
    for (int d : kDims)
      for (int group : kGroups) {
        ++index;
        LayerShape shape;
        shape.dtype = dt;
        shape.head_dim = d;
        shape.kv_heads = group == 8 ? 1 + index % 2 : 2;
        shape.page_size = kPages[index % 5];
        f(shape, group, index);
        if (::testing::Test::HasFatalFailure()) return;
      }
}

TEST_F(CudaAttention, DenseMatchesReference) {
  cuda::AttentionWorkspace ws;  // reused across shapes: grows as needed
  for_each_shape([&](const LayerShape& shape, int group, int index) {
    LayerContent content;
    content.codes = false;
    TestLayer t = make_test_layer(shape, {1, 3, 63, 64, 65, 1000}, 100 + index, content);
    t.max_length_slack = index % 3 == 1 ? 7 : 0;
    check_dense(t, group, index % 2 ? 3.0f : 1.0f, 200 + index, ws);
  });
}

// The tensor-core dense kernel (head_dim 64 and 128) at the edges of its tiling: groups above
// its 8 heads per block (12, 16), lengths around its 16-key tiles and 64-key block rounds, page
// sizes that are and are not multiples of 16 (one page per tile, or a page lookup per key).
TEST_F(CudaAttention, DenseTileEdgesAndLargeGroups) {
  cuda::AttentionWorkspace ws;
  int index = 0;
  for (DType dt : {DType::kF16, DType::kBF16})
    for (int d : {64, 128})
      for (int group : {12, 16, 1}) {
        ++index;
        LayerShape shape;
        shape.dtype = dt;
        shape.head_dim = d;
        shape.kv_heads = 2;
        shape.page_size = (index % 3 == 0) ? 7 : (index % 3 == 1 ? 16 : 48);
        LayerContent content;
        content.codes = false;
        TestLayer t =
            make_test_layer(shape, {16, 1, 15, 17, 63, 64, 65, 4097}, 900 + index, content);
        check_dense(t, group, index % 2 ? 3.0f : 1.0f, 950 + index, ws);
        if (::testing::Test::HasFatalFailure()) return;
      }
}

TEST_F(CudaAttention, SparseMatchesReference) {
  cuda::AttentionWorkspace ws;
  for_each_shape([&](const LayerShape& shape, int group, int index) {
    LayerContent content;
    content.codes = false;
    TestLayer t = make_test_layer(shape, {65, 1, 3, 1000, 63, 64}, 300 + index, content);
    for (bool shared : {false, true})
      check_sparse(t, group, shared, index % 2 ? 1.0f : 3.0f, 400 + index + shared, ws);
  });
}

// Sparse over every position (each row 0 .. length − 1) equals dense up to summation order.
TEST_F(CudaAttention, SparseOverEveryPositionEqualsDense) {
  cuda::AttentionWorkspace ws;
  int index = 0;
  for (DType dt : {DType::kF16, DType::kBF16})
    for (int group : {1, 4, 3}) {
      ++index;
      LayerShape shape;
      shape.dtype = dt;
      shape.head_dim = index % 2 ? 128 : 64;
      shape.kv_heads = 2;
      shape.page_size = index % 2 ? 16 : 7;
      LayerContent content;
      content.codes = false;
      TestLayer t = make_test_layer(shape, {1, 2, 500, 64, 2049}, 500 + index, content);
      const int nqh = 2 * group, B = t.batch_size(), d = t.d();
      FastRng r(600 + index);
      const auto q = fast_normal(r, size_t(B) * nqh * d, 2.0f);
      const auto dense = gpu_dense(t, group, q, ws);
      for (bool shared : {false, true}) {
        const int R = shared ? 2 : nqh;
        SparseRows rows;
        for (int row = 0; row < B * R; ++row) {
          rows.idx.push_back(iota_positions(t.lengths[row / R]));
          rows.max_count = std::max(rows.max_count, t.lengths[row / R]);
        }
        rows.stride = size_t(rows.max_count);
        const auto sparse = gpu_sparse(t, group, shared, q, rows, r, ws);
        for (int row = 0; row < B * nqh; ++row)
          EXPECT_TRUE(
              attention_close(sparse.data() + size_t(row) * d, dense.data() + size_t(row) * d, d))
              << "row " << row << (shared ? " shared" : " per head") << " " << dtype_str(dt)
              << " group " << group;
      }
    }
}

// Keys with a large spread (a peaked softmax) and keys all equal (a flat one): the stable softmax
// and the split merge must agree with the reference in both regimes.
TEST_F(CudaAttention, PeakedAndFlatSoftmax) {
  cuda::AttentionWorkspace ws;
  for (float sigma : {4.0f, 0.0f}) {
    LayerShape shape;
    shape.head_dim = 128;
    shape.kv_heads = 2;
    shape.page_size = 16;
    shape.dtype = sigma > 0 ? DType::kBF16 : DType::kF16;
    LayerContent content;
    content.codes = false;
    content.key_sigma = sigma;
    TestLayer t = make_test_layer(shape, {5000, 17, 1}, 700 + int(sigma), content);
    // Scores of standard deviation ~8 (peaked) with sigma 4; exactly equal with sigma 0.
    check_dense(t, 4, 2.0f, 701, ws);
    check_sparse(t, 4, false, 2.0f, 702, ws);
    check_sparse(t, 4, true, 2.0f, 703, ws);
  }
}

// ~100000 positions: many splits per (sequence, KV head), merged.
TEST_F(CudaAttention, LargeSequencesMatchReference) {
  cuda::AttentionWorkspace ws;
  struct Big {
    DType dt;
    int d, group, page;
  };
  const Big cases[] = {{DType::kF16, 128, 4, 64},
                       {DType::kBF16, 128, 8, 16},
                       {DType::kF16, 256, 2, 64},
                       {DType::kBF16, 64, 3, 5}};
  int index = 0;
  for (const Big& c : cases) {
    ++index;
    LayerShape shape;
    shape.dtype = c.dt;
    shape.head_dim = c.d;
    shape.kv_heads = c.group == 3 ? 2 : 1;
    shape.page_size = c.page;
    LayerContent content;
    content.codes = false;
    TestLayer t = make_test_layer(shape, {100000 + index, 5, 30001}, 800 + index, content);
    check_dense(t, c.group, 2.0f, 810 + index, ws);
    check_sparse(t, c.group, index % 2 == 0, 2.0f, 820 + index, ws);
    if (HasFatalFailure()) return;
  }
}

}  // namespace
}  // namespace adamas::test
