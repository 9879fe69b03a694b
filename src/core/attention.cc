#include "adamas/core/attention.h"

#include <cmath>
#include <vector>

#include "common/check.h"
#include "core/attention_checks.h"

namespace adamas {

void check_attention_args(int nq, const PagedKV& kv) {
  ADAMAS_CHECK(nq >= 1, "attention needs at least one query head, got nq = {}", nq);
  ADAMAS_CHECK(kv.length >= 1, "attention over an empty sequence (length {})", kv.length);
  ADAMAS_CHECK(kv.page_size >= 1, "page_size must be ≥ 1, got {}", kv.page_size);
  ADAMAS_CHECK(kv.head_dim >= 1 && kv.head_dim % 16 == 0,
               "head_dim must be a positive multiple of 16, got {}", kv.head_dim);
}

void check_indices(const PagedKV& kv, const int32_t* indices, int count) {
  ADAMAS_CHECK(count >= 1, "sparse attention needs at least one index, got {}", count);
  for (int i = 0; i < count; ++i) {
    ADAMAS_CHECK(indices[i] >= 0 && indices[i] < kv.length,
                 "index {} at position {} is outside the sequence [0, {})", indices[i], i,
                 kv.length);
  }
}

namespace ref {
namespace {

double dot(const float* q, const std::byte* k, DType t, int d) {
  std::vector<float> kf(d);
  convert_to_f32(k, t, kf.data(), d);
  double s = 0;
  for (int i = 0; i < d; ++i) s += double{q[i]} * kf[i];
  return s;
}

void attend(const float* q, int nq, const PagedKV& kv, const std::vector<int32_t>& pos, float scale,
            float* out) {
  const int d = kv.head_dim;
  std::vector<double> s(pos.size());
  std::vector<float> vf(d);
  for (int h = 0; h < nq; ++h) {
    double mx = -INFINITY;
    for (size_t i = 0; i < pos.size(); ++i) {
      s[i] = scale * dot(q + h * d, kv.key(pos[i]), kv.dtype, d);
      mx = std::max(mx, s[i]);
    }
    std::vector<double> acc(d, 0.0);
    double sum = 0;
    for (size_t i = 0; i < pos.size(); ++i) {
      const double p = std::exp(s[i] - mx);
      sum += p;
      convert_to_f32(kv.value(pos[i]), kv.dtype, vf.data(), d);
      for (int j = 0; j < d; ++j) acc[j] += p * vf[j];
    }
    for (int j = 0; j < d; ++j) out[h * d + j] = static_cast<float>(acc[j] / sum);
  }
}

}  // namespace

void dense_decode_attention(const float* q, int nq, const PagedKV& kv, float scale, float* out) {
  check_attention_args(nq, kv);
  std::vector<int32_t> pos(kv.length);
  for (int t = 0; t < kv.length; ++t) pos[t] = t;
  attend(q, nq, kv, pos, scale, out);
}

void sparse_decode_attention(const float* q, int nq, const PagedKV& kv, const int32_t* indices,
                             int count, float scale, float* out) {
  check_attention_args(nq, kv);
  check_indices(kv, indices, count);
  attend(q, nq, kv, std::vector<int32_t>(indices, indices + count), scale, out);
}

void key_scores(const float* q, int nq, const PagedKV& kv, float* out, size_t out_stride) {
  check_attention_args(nq, kv);
  for (int h = 0; h < nq; ++h)
    for (int t = 0; t < kv.length; ++t)
      out[h * out_stride + t] =
          static_cast<float>(dot(q + h * kv.head_dim, kv.key(t), kv.dtype, kv.head_dim));
}

}  // namespace ref
}  // namespace adamas
