// Each layer of the forward pass against a naive double-precision reference written here.
#include "adamas/model/ops.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "adamas/cache/paged_kv_cache.h"
#include "adamas/core/matvec.h"
#include "model_test_util.h"

namespace adamas::model::test {
namespace {

std::vector<float> randn(std::mt19937& g, size_t n, float sd = 1.0f) {
  std::normal_distribution<float> d(0, sd);
  std::vector<float> v(n);
  for (auto& x : v) x = d(g);
  return v;
}

double max_rel(const std::vector<float>& a, const std::vector<double>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    num = std::max(num, std::abs(a[i] - b[i]));
    den = std::max(den, std::abs(b[i]));
  }
  return num / std::max(den, 1e-30);
}

TEST(Ops, LinearMatchesNaiveForEveryDtypeBatchAndThreadCount) {
  std::mt19937 g(1);
  for (DType dt : {DType::kF32, DType::kF16, DType::kBF16}) {
    for (int n : {1, 3, 37}) {
      for (int threads : {1, 2}) {
        const int rows = 133, cols = 70;  // not multiples of the block size
        auto w = randn(g, size_t(rows) * cols);
        std::vector<uint8_t> stored(w.size() * dtype_size(dt));
        convert_from_f32(w.data(), stored.data(), dt, w.size());
        convert_to_f32(stored.data(), dt, w.data(), w.size());  // what the kernel sees
        const auto x = randn(g, size_t(n) * cols), bias = randn(g, rows);
        Matrix M{stored.data(), dt, rows, cols};
        std::vector<float> y(size_t(n) * rows);
        linear(x.data(), n, M, bias.data(), y.data(), threads);
        std::vector<double> ref(y.size());
        for (int i = 0; i < n; ++i)
          for (int r = 0; r < rows; ++r) {
            double acc = bias[r];
            for (int c = 0; c < cols; ++c) acc += double{x[i * cols + c]} * w[r * cols + c];
            ref[i * rows + r] = acc;
          }
        EXPECT_LT(max_rel(y, ref), 1e-5) << "n=" << n << " threads=" << threads;
      }
    }
  }
}

// Several matrices of one x (q, k, v): large enough for several threads, split at byte
// positions that fall inside and between matrices, mixed dtypes, a 1-row matrix, the prefill path.
TEST(Ops, LinearGroupMatchesLinearOnEveryThreadSplit) {
  std::mt19937 g(11);
  const int cols = 1003;  // ~2.3 MB of weights: up to 4 threads at one per 512 KiB
  struct Spec {
    int rows;
    DType dt;
  };
  const Spec specs[] = {
      {701, DType::kBF16}, {1, DType::kF32}, {333, DType::kF16}, {64, DType::kF32}};
  std::vector<std::vector<uint8_t>> stored;
  std::vector<Matrix> mats;
  std::vector<std::vector<float>> biases;
  for (const Spec& sp : specs) {
    const auto w = randn(g, size_t(sp.rows) * cols);
    stored.emplace_back(w.size() * dtype_size(sp.dt));
    convert_from_f32(w.data(), stored.back().data(), sp.dt, w.size());
    biases.push_back(randn(g, sp.rows));
  }
  for (size_t m = 0; m < stored.size(); ++m)
    mats.push_back(Matrix{stored[m].data(), specs[m].dt, specs[m].rows, cols});
  for (int n : {1, 2, 5, 16, 17}) {
    const auto x = randn(g, size_t(n) * cols);
    for (int threads : {1, 2, 3, 7}) {
      std::vector<std::vector<float>> got, want;
      std::vector<Product> products;
      for (size_t m = 0; m < mats.size(); ++m) {
        got.emplace_back(size_t(n) * mats[m].rows, -1.f);
        want.emplace_back(size_t(n) * mats[m].rows);
        linear(x.data(), n, mats[m], m % 2 ? nullptr : biases[m].data(), want[m].data(), 1);
      }
      for (size_t m = 0; m < mats.size(); ++m)
        products.push_back({&mats[m], m % 2 ? nullptr : biases[m].data(), got[m].data()});
      linear_group(x.data(), n, products, threads);
      for (size_t m = 0; m < mats.size(); ++m) {
        // The matvec path sums each output in one fixed order, whatever the split; sgemm's
        // blocking (prefill, n > 16) depends on the thread count.
        if (n <= kMatvecMaxRows) {
          EXPECT_EQ(got[m], want[m]) << "matrix " << m << " n=" << n << " threads=" << threads;
        } else {
          const std::vector<double> ref(want[m].begin(), want[m].end());
          EXPECT_LT(max_rel(got[m], ref), 1e-5) << "matrix " << m << " threads=" << threads;
        }
      }
    }
  }
  const Matrix narrow{stored[0].data(), DType::kBF16, 10, cols - 1};
  std::vector<float> y(10);
  const Product mismatched[] = {{&mats[0], nullptr, y.data()}, {&narrow, nullptr, y.data()}};
  EXPECT_THROW(linear_group(std::vector<float>(cols).data(), 1, mismatched, 2), Error);
}

TEST(Ops, RmsNorm) {
  std::mt19937 g(2);
  const int n = 5, dim = 96;
  const auto x = randn(g, n * dim, 3.0f), w = randn(g, dim);
  std::vector<float> y(x.size());
  rms_norm(x.data(), w.data(), n, dim, 1e-5f, y.data());
  std::vector<double> ref(y.size());
  for (int i = 0; i < n; ++i) {
    double ss = 0;
    for (int j = 0; j < dim; ++j) ss += double{x[i * dim + j]} * x[i * dim + j];
    const double r = 1.0 / std::sqrt(ss / dim + 1e-5);
    for (int j = 0; j < dim; ++j) ref[i * dim + j] = w[j] * x[i * dim + j] * r;
  }
  EXPECT_LT(max_rel(y, ref), 1e-6);
}

TEST(Ops, RopeRotatesHalvesByPositionTimesFrequency) {
  std::mt19937 g(3);
  const int n = 4, heads = 3, d = 32;
  RopeConfig rc;
  rc.theta = 10000;
  const auto inv = rope_inv_freq(rc, d);
  for (int j = 0; j < d / 2; ++j)
    EXPECT_NEAR(inv[j], std::pow(10000.0, -2.0 * j / d), 1e-6 * inv[j]);
  auto x = randn(g, size_t(n) * heads * d);
  const auto x0 = x;
  const std::vector<int32_t> pos = {0, 1, 17, 1000};
  apply_rope(x.data(), n, heads, d, pos.data(), inv.data());
  std::vector<double> ref(x.size());
  for (int i = 0; i < n; ++i)
    for (int h = 0; h < heads; ++h)
      for (int j = 0; j < d / 2; ++j) {  // (a + ib) · e^{iθ}, a = x[j], b = x[j + d/2]
        const size_t o = (size_t(i) * heads + h) * d;
        const double th = static_cast<double>(pos[i]) * inv[j];
        const double a = x0[o + j], b = x0[o + j + d / 2];
        ref[o + j] = a * std::cos(th) - b * std::sin(th);
        ref[o + j + d / 2] = a * std::sin(th) + b * std::cos(th);
      }
  EXPECT_LT(max_rel(x, ref), 1e-5);
  // Position 0 is the identity.
  for (int j = 0; j < heads * d; ++j) EXPECT_EQ(x[j], x0[j]);
}

TEST(Ops, RopeScalingMatchesTheFormulas) {
  const int d = 64;
  RopeConfig base;
  base.theta = 500000;
  const auto plain = rope_inv_freq(base, d);
  RopeConfig lin = base;
  lin.type = RopeType::kLinear;
  lin.factor = 4;
  const auto l = rope_inv_freq(lin, d);
  for (int j = 0; j < d / 2; ++j) EXPECT_NEAR(l[j], plain[j] / 4, 1e-7 * plain[j]);
  RopeConfig l3 = base;
  l3.type = RopeType::kLlama3;
  l3.factor = 8;
  l3.low_freq_factor = 1;
  l3.high_freq_factor = 4;
  l3.original_max_position_embeddings = 64;
  const auto s = rope_inv_freq(l3, d);
  int kept = 0, divided = 0, smoothed = 0;
  for (int j = 0; j < d / 2; ++j) {
    const double wl = 2 * M_PI / plain[j];
    if (wl < 16) {
      EXPECT_EQ(s[j], plain[j]);
      ++kept;
    } else if (wl > 64) {
      EXPECT_NEAR(s[j], plain[j] / 8, 1e-7 * plain[j]);
      ++divided;
    } else {
      const double a = (64 / wl - 1) / 3;
      EXPECT_NEAR(s[j], (1 - a) * plain[j] / 8 + a * plain[j], 1e-6 * plain[j]);
      ++smoothed;
    }
  }
  EXPECT_GT(kept, 0);
  EXPECT_GT(divided, 0);
  EXPECT_GT(smoothed, 0);
}

TEST(Ops, SwigluAndEmbedding) {
  std::vector<float> gate = {-3, -0.5f, 0, 0.5f, 4}, up = {1, 2, 3, 4, 5};
  const auto g0 = gate;
  swiglu(gate.data(), up.data(), gate.size());
  for (size_t i = 0; i < gate.size(); ++i)
    EXPECT_NEAR(gate[i], g0[i] / (1 + std::exp(-double{g0[i]})) * up[i], 1e-6);
  std::vector<uint16_t> table(6);
  const float vals[6] = {1, 2, 3, 4, 5, 6};
  convert_from_f32(vals, table.data(), DType::kBF16, 6);
  Matrix m{table.data(), DType::kBF16, 3, 2};
  const int32_t ids[2] = {2, 0};
  float out[4];
  embed_tokens(m, ids, 2, out);
  EXPECT_EQ(out[0], 5);
  EXPECT_EQ(out[3], 2);
  const int32_t bad = 3;
  EXPECT_THAT(test_error([&] { embed_tokens(m, &bad, 1, out); }),
              ::testing::HasSubstr("token id 3 out of range [0, 3)"));
}

// Chunked causal attention (several query and key blocks, GQA, a chunk after earlier tokens)
// against a naive double softmax over the cache's stored keys.
TEST(Ops, PrefillAttentionMatchesNaiveCausalSoftmax) {
  for (DType dt : {DType::kF32, DType::kF16}) {
    std::mt19937 g(4);
    const int Hkv = 2, G = 3, H = Hkv * G, d = 32, before = 70, n = 150, L = before + n;
    CacheConfig cc;
    cc.num_layers = 1;
    cc.num_kv_heads = Hkv;
    cc.head_dim = d;
    cc.page_size = 16;
    cc.num_pages = cc.pages_for(L) + 1;
    cc.dtype = dt;
    cc.store_codes = false;
    cc.store_page_minmax = false;
    PagedKVCache cache(cc);
    const SeqId seq = cache.add_sequence();
    auto k = randn(g, size_t(L) * Hkv * d, 2.0f), v = randn(g, size_t(L) * Hkv * d);
    cache.append(0, seq, k.data(), v.data(), before);
    cache.append(0, seq, k.data() + size_t(before) * Hkv * d, v.data() + size_t(before) * Hkv * d,
                 n);
    for (auto* a : {&k, &v})  // the reference reads what the cache stores
      for (auto& x : *a) x = dt == DType::kF16 ? f16_to_f32(f32_to_f16(x)) : x;
    const auto q = randn(g, size_t(n) * H * d, 2.0f);
    std::vector<float> out(q.size());
    prefill_attention(cache, 0, seq, q.data(), n, H, out.data(), 2);
    std::vector<double> ref(out.size());
    for (int i = 0; i < n; ++i)
      for (int h = 0; h < H; ++h) {
        const int kh = h / G, p = before + i;
        std::vector<double> s(p + 1);
        double mx = -1e300, sum = 0;
        for (int t = 0; t <= p; ++t) {
          double acc = 0;
          for (int j = 0; j < d; ++j)
            acc += double{q[(size_t(i) * H + h) * d + j]} * k[(size_t(t) * Hkv + kh) * d + j];
          s[t] = acc / std::sqrt(double(d));
          mx = std::max(mx, s[t]);
        }
        for (auto& x : s) sum += (x = std::exp(x - mx));
        for (int j = 0; j < d; ++j) {
          double o = 0;
          for (int t = 0; t <= p; ++t) o += s[t] * v[(size_t(t) * Hkv + kh) * d + j];
          ref[(size_t(i) * H + h) * d + j] = o / sum;
        }
      }
    EXPECT_LT(max_rel(out, ref), 2e-5) << dtype_name(dt);
  }
}

}  // namespace
}  // namespace adamas::model::test
