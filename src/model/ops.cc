#include "adamas/model/ops.h"

#include <cblas.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <mutex>

#include "adamas/core/matvec.h"
#include "common/check.h"
#include "common/parallel.h"

namespace adamas::model {
namespace {

// OpenBLAS runs single-threaded inside our OpenMP blocks: its own thread pool would oversubscribe
// the cores (OpenBLAS's documented advice for multi-threaded callers).
void blas_single_threaded() {
  static std::once_flag once;
  std::call_once(once, [] { openblas_set_num_threads(1); });
}

const float* f16_table() {
  static const std::vector<float> table = [] {
    std::vector<float> t(65536);
    for (uint32_t i = 0; i < 65536; ++i) t[i] = f16_to_f32(static_cast<uint16_t>(i));
    return t;
  }();
  return table.data();
}

// Threads worth using for `work` multiply-adds: a parallel region costs a few microseconds and, on
// a loaded machine, a barrier can wait a whole time slice for a descheduled thread, so small
// products (tiny models, single-token decode of small layers) run on the calling thread.
int resolve_threads(int threads, double work) {
  const int max = threads > 0 ? threads : omp_get_max_threads();
  return std::clamp(static_cast<int>(work / (1 << 20)), 1, max);
}

}  // namespace

void to_f32(const void* src, DType type, float* dst, size_t n) {
  switch (type) {
    case DType::kF32:
      std::copy_n(static_cast<const float*>(src), n, dst);
      return;
    case DType::kBF16: {
      const auto* s = static_cast<const uint16_t*>(src);
      auto* d = reinterpret_cast<uint32_t*>(dst);
      for (size_t i = 0; i < n; ++i) d[i] = uint32_t{s[i]} << 16;  // vectorizes
      return;
    }
    case DType::kF16: {
      const auto* s = static_cast<const uint16_t*>(src);
      const float* t = f16_table();
      for (size_t i = 0; i < n; ++i) dst[i] = t[s[i]];
      return;
    }
  }
}

void linear_group(const float* x, int n, std::span<const Product> products, int threads) {
  ADAMAS_CHECK(n >= 0, "linear_group: n = {}", n);
  if (n == 0 || products.empty()) return;
  if (n > kMatvecMaxRows) {  // prefill: sgemm per matrix
    for (const Product& p : products) linear(x, n, *p.W, p.bias, p.y, threads);
    return;
  }
  const int cols = products[0].W->cols;
  double total = 0;
  for (const Product& p : products) {
    ADAMAS_CHECK(p.W->data != nullptr && p.W->cols == cols && p.y != nullptr,
                 "linear_group: every matrix needs data, an output and x's width {} (got {})", cols,
                 p.W->cols);
    total += double(p.W->rows) * cols * dtype_size(p.W->dtype);
  }
  // Memory-bound, so every thread reads one contiguous byte range of the matrices laid end to
  // end (static halves beat 16 dynamic blocks on the 2-core VM: a small model's products 27 -> 40
  // GB/s; the prefetchers follow one long stream), and a thread per 512 KiB of weights: each
  // parallel region's barrier costs more than a small product gains from more threads (tiny
  // model, 2-core VM: 1.6-1.7 ms/step with a thread per 128 KiB, 1.5; 16-core VM: 2 ms/step at
  // 4 threads, 8.4 at 16).
  threads = std::clamp(static_cast<int>(total / (512 << 10)), 1,
                       threads > 0 ? threads : omp_get_max_threads());
  parallel_for(threads, threads, [&](int t) {
    const double begin = total * t / threads, end = total * (t + 1) / threads;
    double offset = 0;
    for (const Product& p : products) {
      const Matrix& W = *p.W;
      const double row_bytes = double(cols) * dtype_size(W.dtype);
      // Row boundaries from byte positions: neighbours compute the same row for a shared one.
      auto row_at = [&](double pos) {
        return static_cast<int>(
            std::clamp(std::round((pos - offset) / row_bytes), 0.0, double(W.rows)));
      };
      const int r0 = row_at(begin), r1 = row_at(end);
      if (r0 < r1) {
        matvec(x, n, cols, W.data, W.dtype, r0, r1, p.y, W.rows);
        if (p.bias)
          for (int i = 0; i < n; ++i)
            for (int r = r0; r < r1; ++r) p.y[size_t(i) * W.rows + r] += p.bias[r];
      }
      offset += W.rows * row_bytes;
    }
  });
}

void linear(const float* x, int n, const Matrix& W, const float* bias, float* y, int threads) {
  ADAMAS_CHECK(n >= 0 && W.data != nullptr, "linear: bad arguments (n = {})", n);
  if (n == 0) return;
  const int rows = W.rows, cols = W.cols;
  if (n <= kMatvecMaxRows) {  // decode: stream the weights once, converted in registers
    const Product one{&W, bias, y};
    linear_group(x, n, {&one, 1}, threads);
    return;
  }
  threads = resolve_threads(threads, double(n) * rows * cols);
  blas_single_threaded();
  // Enough blocks to balance the threads, each large enough for sgemm to be efficient.
  int block = std::clamp(rows / (4 * threads), 16, 512);
  block = (block + 15) / 16 * 16;
  const int blocks = (rows + block - 1) / block;
  parallel_for(blocks, threads, [&](int b) {
    const int r0 = b * block, nr = std::min(block, rows - r0);
    thread_local std::vector<float> buf;
    const float* w = nullptr;
    if (W.dtype == DType::kF32) {
      w = static_cast<const float*>(W.row(r0));
    } else {
      buf.resize(size_t(nr) * cols);
      to_f32(W.row(r0), W.dtype, buf.data(), size_t(nr) * cols);
      w = buf.data();
    }
    if (n == 1) {
      cblas_sgemv(CblasRowMajor, CblasNoTrans, nr, cols, 1.0f, w, cols, x, 1, 0.0f, y + r0, 1);
    } else {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, nr, cols, 1.0f, x, cols, w, cols,
                  0.0f, y + r0, rows);
    }
    if (bias)
      for (int i = 0; i < n; ++i)
        for (int r = 0; r < nr; ++r) y[size_t(i) * rows + r0 + r] += bias[r0 + r];
  });
}

void rms_norm(const float* x, const float* weight, int n, int dim, float eps, float* y) {
  for (int i = 0; i < n; ++i) {
    const float* xi = x + size_t(i) * dim;
    float* yi = y + size_t(i) * dim;
    float ss = 0;  // fp32 like HF (which upcasts to fp32 for the variance)
    for (int j = 0; j < dim; ++j) ss += xi[j] * xi[j];
    const float r = 1.0f / std::sqrt(ss / dim + eps);
    for (int j = 0; j < dim; ++j) yi[j] = weight[j] * (xi[j] * r);
  }
}

std::vector<float> rope_inv_freq(const RopeConfig& rope, int head_dim) {
  const int half = head_dim / 2;
  std::vector<float> inv(half);
  for (int i = 0; i < half; ++i) {
    const float e = static_cast<float>(2 * i) / static_cast<float>(head_dim);
    inv[i] = 1.0f / static_cast<float>(std::pow(rope.theta, double{e}));
  }
  if (rope.type == RopeType::kLinear) {
    for (float& f : inv) f = static_cast<float>(f / rope.factor);
  } else if (rope.type == RopeType::kLlama3) {
    // transformers' _compute_llama3_parameters.
    const double old_len = rope.original_max_position_embeddings;
    const double low_wavelen = old_len / rope.low_freq_factor;
    const double high_wavelen = old_len / rope.high_freq_factor;
    for (float& f : inv) {
      const double wavelen = 2 * M_PI / f;
      if (wavelen < high_wavelen) continue;  // high frequencies kept
      if (wavelen > low_wavelen) {           // low frequencies interpolated
        f = static_cast<float>(f / rope.factor);
        continue;
      }
      const double smooth = (old_len / wavelen - rope.low_freq_factor) /
                            (rope.high_freq_factor - rope.low_freq_factor);
      f = static_cast<float>((1 - smooth) * f / rope.factor + smooth * f);
    }
  }
  return inv;
}

void apply_rope(float* x, int n, int heads, int head_dim, const int32_t* positions,
                const float* inv_freq) {
  const int half = head_dim / 2;
  std::vector<float> c(half), s(half);
  for (int i = 0; i < n; ++i) {
    for (int j = 0; j < half; ++j) {
      // fp32 angle, as HF's (inv_freq ⊗ position) product in fp32.
      const float angle = inv_freq[j] * static_cast<float>(positions[i]);
      c[j] = std::cos(angle);
      s[j] = std::sin(angle);
    }
    for (int h = 0; h < heads; ++h) {
      float* v = x + (size_t(i) * heads + h) * head_dim;
      for (int j = 0; j < half; ++j) {
        const float a = v[j], b = v[j + half];
        v[j] = a * c[j] - b * s[j];
        v[j + half] = b * c[j] + a * s[j];
      }
    }
  }
}

void swiglu(float* gate, const float* up, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    const float g = gate[i];
    gate[i] = g / (1.0f + std::exp(-g)) * up[i];
  }
}

void embed_tokens(const Matrix& table, const int32_t* tokens, int n, float* out) {
  for (int i = 0; i < n; ++i) {
    ADAMAS_CHECK(tokens[i] >= 0 && tokens[i] < table.rows,
                 "token id {} out of range [0, {}) (vocab_size)", tokens[i], table.rows);
    to_f32(table.row(tokens[i]), table.dtype, out + size_t(i) * table.cols, table.cols);
  }
}

void prefill_attention(const PagedKVCache& cache, int layer, SeqId seq, const float* q, int n,
                       int num_heads, float* out, int threads) {
  const CacheConfig& cc = cache.config();
  const int d = cc.head_dim, Hkv = cc.num_kv_heads;
  ADAMAS_CHECK(num_heads % Hkv == 0, "prefill_attention: {} heads not a multiple of {} KV heads",
               num_heads, Hkv);
  const int G = num_heads / Hkv;
  const int length = cache.length(layer, seq);
  ADAMAS_CHECK(n >= 1 && n <= length, "prefill_attention: {} new tokens but the cache holds {}", n,
               length);
  blas_single_threaded();
  const int p0 = length - n;
  constexpr int kBq = 64, kBk = 64;  // query tokens × keys per block
  const int qblocks = (n + kBq - 1) / kBq;
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  const double work = double(n) * length * d * num_heads;
  parallel_for(Hkv * qblocks, resolve_threads(threads, work), [&](int task) {
    const int h = task / qblocks, i0 = (task % qblocks) * kBq, nb = std::min(kBq, n - i0);
    const int R = G * nb;  // rows: the group's query heads × the block's tokens
    thread_local std::vector<float> Q, K, V, S, acc, m, l;
    Q.resize(size_t(R) * d);
    K.resize(size_t(kBk) * d);
    V.resize(size_t(kBk) * d);
    S.resize(size_t(R) * kBk);
    acc.assign(size_t(R) * d, 0.0f);
    m.assign(R, -INFINITY);
    l.assign(R, 0.0f);
    for (int g = 0; g < G; ++g)
      for (int i = 0; i < nb; ++i) {
        const float* src = q + (size_t(i0 + i) * num_heads + h * G + g) * d;
        float* dst = Q.data() + (size_t(g) * nb + i) * d;
        for (int j = 0; j < d; ++j) dst[j] = src[j] * scale;
      }
    const PagedKV kv = cache.kv(layer, seq, h);
    const int kend = p0 + i0 + nb;  // keys visible to the block's last query
    for (int k0 = 0; k0 < kend; k0 += kBk) {
      const int nk = std::min(kBk, kend - k0);
      for (int t = 0; t < nk; ++t) {
        to_f32(kv.key(k0 + t), kv.dtype, K.data() + size_t(t) * d, d);
        to_f32(kv.value(k0 + t), kv.dtype, V.data() + size_t(t) * d, d);
      }
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, R, nk, d, 1.0f, Q.data(), d, K.data(), d,
                  0.0f, S.data(), kBk);
      for (int r = 0; r < R; ++r) {
        const int pos = p0 + i0 + r % nb;  // this row's query position
        float* s = S.data() + size_t(r) * kBk;
        const int visible = std::clamp(pos - k0 + 1, 0, nk);
        float mx = m[r];
        for (int t = 0; t < visible; ++t) mx = std::max(mx, s[t]);
        if (visible == 0) {  // the whole block lies in this query's future
          std::fill(s, s + nk, 0.0f);
          continue;
        }
        const float corr = std::exp(m[r] - mx);  // 0 on the first block (m = −inf)
        float sum = 0;
        for (int t = 0; t < visible; ++t) sum += (s[t] = std::exp(s[t] - mx));
        std::fill(s + visible, s + nk, 0.0f);
        l[r] = l[r] * corr + sum;
        m[r] = mx;
        float* a = acc.data() + size_t(r) * d;
        for (int j = 0; j < d; ++j) a[j] *= corr;
      }
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, R, d, nk, 1.0f, S.data(), kBk,
                  V.data(), d, 1.0f, acc.data(), d);
    }
    for (int g = 0; g < G; ++g)
      for (int i = 0; i < nb; ++i) {
        const int r = g * nb + i;
        const float inv = 1.0f / l[r];
        float* dst = out + (size_t(i0 + i) * num_heads + h * G + g) * d;
        for (int j = 0; j < d; ++j) dst[j] = acc[size_t(r) * d + j] * inv;
      }
  });
}

}  // namespace adamas::model
