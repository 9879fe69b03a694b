#include "adamas/core/estimate.h"

#include <algorithm>
#include <cstdlib>

#include "common/check.h"
#include "core/estimate_checks.h"

namespace adamas {

int max_distance(const CodeSpec& spec, Distance distance) {
  if (distance == Distance::kIP) return 65535;  // encode_query_ip keeps every sum within 16 bits
  const int top = (1 << spec.bits) - 1;
  return (distance == Distance::kL1 ? top : top * top) * spec.head_dim;
}

int histogram_size(const CodeSpec& spec, Distance distance, int nq, bool sum_heads) {
  if (distance == Distance::kIP) return (65535 >> kIpHistogramShift) + 1;
  return max_distance(spec, distance) * (sum_heads ? nq : 1) + 1;
}

void check_estimate_args(const CodeSpec& spec, Distance distance, const QueryCode* q, int nq,
                         const PagedCodes& codes, bool sum_heads) {
  spec.validate();
  ADAMAS_CHECK(nq >= 1, "estimate needs at least one query head, got nq = {}", nq);
  ADAMAS_CHECK(codes.length >= 0, "sequence length must be ≥ 0, got {}", codes.length);
  ADAMAS_CHECK(codes.slot_stride == code_slot_stride(codes.page_size),
               "code slot_stride {} does not match page_size {}", codes.slot_stride,
               codes.page_size);
  const bool ip = distance == Distance::kIP;
  long ip_worst = 0;
  for (int h = 0; h < nq; ++h) {
    ADAMAS_CHECK(q[h].bits == spec.bits && q[h].words == spec.words(),
                 "query code {} has {} bits × {} words, the key codes {} bits × {} words", h,
                 q[h].bits, q[h].words, spec.bits, spec.words());
    ADAMAS_CHECK(q[h].qplanes == (ip ? kIpQueryPlanes : 0),
                 "query code {} was encoded for {}, the estimate is {}", h,
                 q[h].qplanes ? "dist=ip (encode_query_ip)" : "L1/L2 (encode_query)",
                 ip ? "dist=ip" : "L1/L2");
    if (ip) {
      ADAMAS_CHECK(q[h].offset >= 0, "query code {} has a negative offset {}", h, q[h].offset);
      ip_worst = sum_heads ? ip_worst + 2L * q[h].offset : std::max(ip_worst, 2L * q[h].offset);
    }
  }
  if (ip) {
    ADAMAS_CHECK(ip_worst <= 65535,
                 "dist=ip distances up to {} do not fit 16 bits ({} heads summed): encode the "
                 "queries with heads_summed = {}",
                 ip_worst, sum_heads ? nq : 1, sum_heads ? nq : 1);
    return;
  }
  const long worst = long{max_distance(spec, distance)} * (sum_heads ? nq : 1);
  ADAMAS_CHECK(worst <= 65535,
               "distances up to {} do not fit 16 bits ({} bits, {}, head_dim {}, {} heads summed)",
               worst, spec.bits, distance == Distance::kL1 ? "L1" : "L2", spec.head_dim,
               sum_heads ? nq : 1);
}

namespace ref {

void estimate_distances(const CodeSpec& spec, Distance distance, const QueryCode* q, int nq,
                        const PagedCodes& codes, bool sum_heads, uint16_t* out, size_t out_stride) {
  check_estimate_args(spec, distance, q, nq, codes, sum_heads);
  const int d = spec.head_dim;
  uint8_t kb[256];
  for (int t = 0; t < codes.length; ++t) {
    unpack_key_buckets(spec, codes.page(t / codes.page_size), codes.slot_stride,
                       t % codes.page_size, kb);
    int total = 0;
    for (int h = 0; h < nq; ++h) {
      int dist = 0;
      if (distance == Distance::kIP) {
        int level[1 << kMaxCodeBits] = {0};  // Σ_{m ≤ b} Δ̃_m
        for (int b = 1; b < (1 << spec.bits); ++b) level[b] = level[b - 1] + q[h].steps[b - 1];
        int score = 0;
        for (int i = 0; i < d; ++i) {
          int u = 0;
          for (int j = 0; j < q[h].qplanes; ++j)
            u |= static_cast<int>((q[h].planes[j * q[h].words + i / 64] >> (i % 64)) & 1) << j;
          score += (u - kIpQueryMax) * level[kb[i]];
        }
        dist = q[h].offset - score;
      }
      for (int i = 0; distance != Distance::kIP && i < d; ++i) {
        int qb = 0;  // bucket = number of thermometer planes set
        for (int m = 0; m < spec.thermo_planes(); ++m) {
          qb += (q[h].planes[m * q[h].words + i / 64] >> (i % 64)) & 1;
        }
        const int delta = std::abs(qb - int{kb[i]});
        dist += distance == Distance::kL1 ? delta : delta * delta;
      }
      if (sum_heads) {
        total += dist;
      } else {
        out[h * out_stride + t] = static_cast<uint16_t>(dist);
      }
    }
    if (sum_heads) out[t] = static_cast<uint16_t>(total);
  }
}

}  // namespace ref
}  // namespace adamas
