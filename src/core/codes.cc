#include "adamas/core/codes.h"

#include <algorithm>
#include <cmath>

#include "adamas/core/hadamard.h"
#include "common/check.h"

namespace adamas {

std::vector<float> default_thresholds(int bits) {
  switch (bits) {
    case 1:
      return {0.f};
    case 2:
      return {-10.f, 0.f, 10.f};
    case 3:
      return {-15.f, -10.f, -5.f, 0.f, 5.f, 10.f, 15.f};
  }
  throw Error(fmt::format("code bits must be 1, 2 or 3, got {}", bits));
}

static void check_thresholds(std::span<const float> t, int bits) {
  const size_t want = (size_t{1} << bits) - 1;
  ADAMAS_CHECK(t.size() == want, "{}-bit codes need {} thresholds, got {}", bits, want, t.size());
  for (size_t i = 0; i < t.size(); ++i) {
    ADAMAS_CHECK(std::isfinite(t[i]), "threshold {} is not finite", i);
    ADAMAS_CHECK(i == 0 || t[i - 1] < t[i],
                 "thresholds must be strictly ascending, but t[{}] = {} ≥ t[{}] = {}", i - 1,
                 t[i - 1], i, t[i]);
  }
}

void CodeSpec::validate() const {
  check_head_dim(head_dim);
  ADAMAS_CHECK(bits >= 1 && bits <= kMaxCodeBits, "code bits must be 1, 2 or 3, got {}", bits);
  if (!thresholds.empty()) check_thresholds(thresholds, bits);
}

std::vector<float> CodeSpec::effective_thresholds() const {
  return thresholds.empty() ? default_thresholds(bits) : thresholds;
}

std::vector<float> calibrate_thresholds(std::span<const float> values, int bits) {
  ADAMAS_CHECK(bits >= 1 && bits <= kMaxCodeBits, "code bits must be 1, 2 or 3, got {}", bits);
  const size_t buckets = size_t{1} << bits;
  std::vector<float> v;  // NaN/Inf samples carry no order information: drop them
  v.reserve(values.size());
  for (float x : values)
    if (std::isfinite(x)) v.push_back(x);
  ADAMAS_CHECK(v.size() >= buckets, "calibration needs at least {} finite values, got {} of {}",
               buckets, v.size(), values.size());
  std::vector<float> t(buckets - 1);
  for (size_t m = 1; m < buckets; ++m) {
    const size_t k = std::min(v.size() - 1, m * v.size() / buckets);
    std::nth_element(v.begin(), v.begin() + static_cast<ptrdiff_t>(k), v.end());
    t[m - 1] = v[k];
  }
  std::sort(t.begin(), t.end());
  // Equal quantiles (many identical values) would make empty buckets: nudge them apart.
  for (size_t m = 1; m < t.size(); ++m) {
    if (!(t[m] > t[m - 1])) t[m] = std::nextafter(t[m - 1], INFINITY);
  }
  return t;
}

void check_levels(std::span<const float> levels, int bits) {
  ADAMAS_CHECK(bits >= 1 && bits <= kMaxCodeBits, "code bits must be 1, 2 or 3, got {}", bits);
  const size_t want = size_t{1} << bits;
  ADAMAS_CHECK(levels.size() == want, "{}-bit codes need {} levels, got {}", bits, want,
               levels.size());
  for (size_t i = 0; i < levels.size(); ++i) {
    ADAMAS_CHECK(std::isfinite(levels[i]), "level {} is not finite", i);
    ADAMAS_CHECK(i == 0 || levels[i - 1] <= levels[i],
                 "levels must be non-decreasing, but level[{}] = {} > level[{}] = {}", i - 1,
                 levels[i - 1], i, levels[i]);
  }
}

std::vector<float> default_levels(std::span<const float> thresholds) {
  const size_t M = thresholds.size();
  ADAMAS_CHECK(M == 1 || M == 3 || M == 7, "levels need 1, 3 or 7 thresholds, got {}", M);
  std::vector<float> L(M + 1);
  if (M == 1) {
    L[0] = thresholds[0] - 1.f;
    L[1] = thresholds[0] + 1.f;
    return L;
  }
  for (size_t m = 1; m < M; ++m) L[m] = 0.5f * (thresholds[m - 1] + thresholds[m]);
  L[0] = thresholds[0] - 0.5f * (thresholds[1] - thresholds[0]);
  L[M] = thresholds[M - 1] + 0.5f * (thresholds[M - 1] - thresholds[M - 2]);
  return L;
}

std::vector<float> bucket_centroids(std::span<const float> values,
                                    std::span<const float> thresholds) {
  std::vector<float> L = default_levels(thresholds);
  std::vector<double> sum(L.size(), 0.0);
  std::vector<size_t> count(L.size(), 0);
  for (float x : values) {
    if (!std::isfinite(x)) continue;
    const uint8_t b = bucket_of(x, thresholds);
    sum[b] += x;
    ++count[b];
  }
  for (size_t b = 0; b < L.size(); ++b)
    if (count[b] > 0) L[b] = static_cast<float>(sum[b] / static_cast<double>(count[b]));
  // Bucket means are ordered like the buckets; a default level beside an empty bucket may not be.
  for (size_t b = 1; b < L.size(); ++b) L[b] = std::max(L[b], L[b - 1]);
  return L;
}

namespace {

// compute_buckets without the checks, for loops over many vectors of one validated spec.
void buckets_unchecked(const CodeSpec& spec, std::span<const float> thresholds, const float* x,
                       uint8_t* buckets) {
  const int d = spec.head_dim;
  float tmp[kMaxHeadDim];
  std::copy(x, x + d, tmp);
  if (spec.hadamard) hadamard_transform(tmp, 1, d);
  for (int i = 0; i < d; ++i) buckets[i] = bucket_of(tmp[i], thresholds);
}

}  // namespace

void compute_buckets(const CodeSpec& spec, std::span<const float> thresholds, const float* x,
                     uint8_t* buckets) {
  spec.validate();
  check_thresholds(thresholds, spec.bits);
  buckets_unchecked(spec, thresholds, x, buckets);
}

QueryCode encode_query(const CodeSpec& spec, std::span<const float> thresholds, const float* q) {
  spec.validate();
  check_thresholds(thresholds, spec.bits);
  uint8_t b[kMaxHeadDim];
  buckets_unchecked(spec, thresholds, q, b);
  QueryCode code;
  code.bits = spec.bits;
  code.words = spec.words();
  for (int m = 0; m < spec.thermo_planes(); ++m) {
    for (int i = 0; i < spec.head_dim; ++i) {
      if (b[i] >= m + 1) code.planes[m * code.words + i / 64] |= uint64_t{1} << (i % 64);
    }
  }
  return code;
}

QueryCode encode_query_ip(const CodeSpec& spec, std::span<const float> levels, const float* q,
                          int heads_summed) {
  spec.validate();
  check_levels(levels, spec.bits);
  ADAMAS_CHECK(heads_summed >= 1, "heads_summed must be ≥ 1, got {}", heads_summed);
  const int d = spec.head_dim, M = spec.thermo_planes();
  float x[kMaxHeadDim];
  std::copy(q, q + d, x);
  if (spec.hadamard) hadamard_transform(x, 1, d);
  float amax = 0.f;
  for (int i = 0; i < d; ++i) amax = std::max(amax, std::fabs(x[i]));  // NaN is dropped
  QueryCode code;
  code.bits = spec.bits;
  code.words = spec.words();
  code.qplanes = kIpQueryPlanes;
  const float scale = amax > 0.f && std::isfinite(amax) ? kIpQueryMax / amax : 0.f;
  for (int i = 0; i < d; ++i) {
    const float r = std::isfinite(x[i]) ? std::rint(x[i] * scale) : 0.f;
    const int u =
        static_cast<int>(std::clamp(r, float(-kIpQueryMax), float(kIpQueryMax))) + kIpQueryMax;
    for (int j = 0; j < kIpQueryPlanes; ++j) {
      if ((u >> j) & 1) code.planes[j * code.words + i / 64] |= uint64_t{1} << (i % 64);
    }
  }
  // Integer level steps on a grid of span / W: the largest W ≤ 15 whose distances still fit.
  const float span = levels[M] - levels[0];
  for (int W = 15; W >= 1; --W) {
    int total = 0;
    for (int m = 1; m <= M; ++m) {
      const float delta = levels[m] - levels[m - 1];
      // A distinct level never rounds away: a positive step is at least one unit.
      code.steps[m - 1] =
          delta > 0.f ? std::max(1, static_cast<int32_t>(std::lround(delta * W / span))) : 0;
      total += code.steps[m - 1];
    }
    const long offset = long{kIpQueryMax} * d * total;
    if (2 * offset * heads_summed <= 65535) {
      code.offset = static_cast<int>(offset);
      return code;
    }
  }
  throw Error(
      fmt::format("dist=ip: distances of head_dim {} summed over {} query heads do not fit 16 bits",
                  d, heads_summed));
}

void encode_keys(const CodeSpec& spec, std::span<const float> thresholds, const void* keys,
                 DType dtype, size_t n, size_t key_stride, uint64_t* code_page, int slot_stride,
                 int slot0) {
  spec.validate();
  ADAMAS_CHECK(slot0 >= 0 && slot0 + n <= static_cast<size_t>(slot_stride),
               "key slots [{}, {}) do not fit a code page of {} slots", slot0, slot0 + n,
               slot_stride);
  check_thresholds(thresholds, spec.bits);
  const int d = spec.head_dim, words = spec.words();
  const auto* base = static_cast<const std::byte*>(keys);
  float x[kMaxHeadDim];
  uint8_t b[kMaxHeadDim];
  for (size_t r = 0; r < n; ++r) {
    convert_to_f32(base + r * key_stride * dtype_size(dtype), dtype, x, d);
    buckets_unchecked(spec, thresholds, x, b);
    const size_t slot = slot0 + r;
    for (int p = 0; p < spec.bits; ++p) {
      for (int w = 0; w < words; ++w) {
        uint64_t word = 0;
        for (int i = w * 64; i < std::min(d, w * 64 + 64); ++i) {
          word |= uint64_t{(b[i] >> p) & 1u} << (i % 64);
        }
        code_page[(size_t(p) * words + w) * slot_stride + slot] = word;
      }
    }
  }
}

void unpack_key_buckets(const CodeSpec& spec, const uint64_t* code_page, int slot_stride, int slot,
                        uint8_t* buckets) {
  const int words = spec.words();
  for (int i = 0; i < spec.head_dim; ++i) {
    uint8_t v = 0;
    for (int p = 0; p < spec.bits; ++p) {
      const uint64_t word = code_page[(size_t(p) * words + i / 64) * slot_stride + slot];
      v |= static_cast<uint8_t>(((word >> (i % 64)) & 1u) << p);
    }
    buckets[i] = v;
  }
}

}  // namespace adamas
