// kernels.h estimate_distances: the GPU distances and fused histograms equal
// adamas::ref::estimate_distances (and the counts of its distances) exactly, on CPU views over the
// same code pool, for a ragged batch × bits 1/2/3 × L1/L2 × per-head/summed × exclude_last ×
// GQA groups 1, 2, 3, 4, 8 × head_dim 16..256 × page sizes (incl. ones not a multiple of 8).
// Outputs are poisoned first: every distance in range must be written, and nothing at or beyond
// n_b (the row's length, − 1 with exclude_last) up to out_stride.
#include "adamas/core/estimate.h"

#include "cuda_test_util.h"

namespace adamas::test {
namespace {

class CudaEstimate : public CudaTest {};

constexpr uint16_t kPoison16 = 0xffff;

struct EstCase {
  int group;
  Distance dist;
  bool sum_heads;
  bool exclude_last;
  bool with_histogram = true;
  bool prefilled_histogram = false;  // counters start non-zero: the kernel must add to them
  std::string name() const {
    return "group " + std::to_string(group) + (dist == Distance::kL1 ? " L1" : " L2") +
           (sum_heads ? " summed" : " per-head") + (exclude_last ? " exclude_last" : "") +
           (with_histogram ? (prefilled_histogram ? " prefilled histogram" : " histogram")
                           : " no histogram");
  }
};

long worst_distance(int bits, int d, Distance dist, int group, bool sum_heads) {
  const long top = (1 << bits) - 1;
  return (dist == Distance::kL1 ? top : top * top) * d * (sum_heads ? group : 1);
}

// Runs one estimate over the whole batch of `t` and checks every row against the reference.
void check_estimate(TestLayer& t, const EstCase& c, uint64_t seed) {
  SCOPED_TRACE(t.shape.name() + " " + c.name());
  FastRng r(seed);
  const int H = t.shape.kv_heads, nqh = H * c.group, B = t.batch_size(), d = t.d();
  const CodeSpec spec = t.spec();
  // Query codes from random buckets (every bucket value equally likely).
  std::vector<QueryCode> q(size_t(B) * nqh);
  std::vector<uint8_t> buckets(d);
  for (auto& code : q) {
    for (auto& x : buckets) x = static_cast<uint8_t>(r.next() & ((1u << t.shape.bits) - 1));
    code = thermometer_query(buckets.data(), t.shape.bits, d);
  }
  auto q_dev = to_device(q);
  const cuda::DeviceBatch batch = t.batch();
  const size_t stride = size_t(batch.max_length) + 3;
  const int R = c.sum_heads ? H : nqh;  // rows per sequence
  const int rows = B * R;
  const int hs = histogram_size(spec, c.dist, c.group, c.sum_heads);
  DeviceBuffer<uint16_t> out(size_t(rows) * stride);
  out.fill_bytes(0xff);
  DeviceBuffer<uint32_t> hist(size_t(rows) * hs);
  std::vector<uint32_t> hist0(size_t(rows) * hs, 0);
  if (c.prefilled_histogram)
    for (auto& x : hist0) x = static_cast<uint32_t>(r.next() % 5);
  upload_array(hist.data(), hist0);

  cuda::EstimateArgs a;
  a.q = q_dev.data();
  a.num_q_heads = nqh;
  a.distance = c.dist;
  a.sum_heads = c.sum_heads;
  a.exclude_last = c.exclude_last;
  a.out = out.data();
  a.out_stride = stride;
  a.histogram = c.with_histogram ? hist.data() : nullptr;
  cuda::estimate_distances(t.layer(), batch, a, nullptr);
  const auto got = download_array(out.data(), size_t(rows) * stride);
  const auto got_hist = download_array(hist.data(), size_t(rows) * hs);

  for (int b = 0; b < B; ++b) {
    const int n = t.lengths[b] - (c.exclude_last ? 1 : 0);
    for (int j = 0; j < H; ++j) {
      const int ref_rows = c.sum_heads ? 1 : c.group;
      const size_t ref_stride = std::max(n, 1);
      std::vector<uint16_t> want(size_t(ref_rows) * ref_stride);
      ref::estimate_distances(spec, c.dist, q.data() + size_t(b) * nqh + size_t(j) * c.group,
                              c.group, t.codes(b, j, n), c.sum_heads, want.data(), ref_stride);
      for (int i = 0; i < ref_rows; ++i) {
        const int row = b * R + (c.sum_heads ? j : j * c.group + i);
        SCOPED_TRACE("sequence " + std::to_string(b) + " (length " + std::to_string(t.lengths[b]) +
                     ") kv head " + std::to_string(j) + " row " + std::to_string(row));
        const uint16_t* g = got.data() + size_t(row) * stride;
        const uint16_t* w = want.data() + size_t(i) * ref_stride;
        for (int pos = 0; pos < n; ++pos)
          ASSERT_EQ(g[pos], w[pos]) << "distance at position " << pos << " of " << n;
        for (size_t pos = n; pos < stride; ++pos)
          ASSERT_EQ(g[pos], kPoison16) << "wrote position " << pos << " at or beyond n = " << n;
        const uint32_t* gh = got_hist.data() + size_t(row) * hs;
        const uint32_t* h0 = hist0.data() + size_t(row) * hs;
        if (!c.with_histogram) {
          for (int v = 0; v < hs; ++v)
            ASSERT_EQ(gh[v], h0[v]) << "histogram touched without being given";
          continue;
        }
        std::vector<uint32_t> counts(hs, 0);
        for (int pos = 0; pos < n; ++pos) {
          ASSERT_LT(w[pos], hs);
          ++counts[w[pos]];
        }
        for (int v = 0; v < hs; ++v)
          ASSERT_EQ(gh[v], h0[v] + counts[v]) << "histogram counter of distance " << v;
      }
    }
  }
}

constexpr int kDims[] = {16, 32, 64, 128, 256};
constexpr int kGroups[] = {1, 2, 4, 8, 3};
constexpr int kPages[] = {5, 16, 64, 1, 8, 13};

// Every bits × distance × sum_heads × exclude_last, each with two (group, head_dim, page size)
// combinations cycling through the lists (lengths 1, 7, page multiples, a few thousand).
TEST_F(CudaEstimate, MatchesReferenceOverRaggedBatch) {
  int index = 0;
  for (int bits : {1, 2, 3})
    for (Distance dist : {Distance::kL1, Distance::kL2})
      for (bool sum : {false, true})
        for (bool excl : {false, true})
          for (int rep = 0; rep < 2; ++rep, ++index) {
            const int group = kGroups[index % 5];
            int d = kDims[(index * 3 + rep) % 5];
            while (worst_distance(bits, d, dist, group, sum) > 65535) d /= 2;
            LayerShape shape;
            shape.kv_heads = group == 3 ? 2 : 1 + index % 3;
            shape.head_dim = d;
            shape.page_size = kPages[index % 6];
            shape.bits = bits;
            const int P = shape.page_size;
            const std::vector<int> lengths = {1, 7, P, 2 * P, 3 * P + 1, 1000, 3000 + index};
            LayerContent content;
            content.kv = false;
            TestLayer t = make_test_layer(shape, lengths, 1000 + index, content);
            t.max_length_slack = index % 3 == 0 ? 5 : 0;
            EstCase c{group, dist, sum, excl};
            c.with_histogram = index % 7 != 3;
            c.prefilled_histogram = index % 5 == 2;
            check_estimate(t, c, 2000 + index);
            if (HasFatalFailure()) return;
          }
}

// Every GQA group with each head_dim, per-head and summed (exclude_last, as the decoder runs).
TEST_F(CudaEstimate, EveryGroupAndHeadDim) {
  int index = 0;
  for (int group : kGroups)
    for (int d : kDims) {
      ++index;
      const int bits = 1 + index % 3;
      for (bool sum : {false, true}) {
        const Distance dist = index % 2 ? Distance::kL2 : Distance::kL1;
        if (worst_distance(bits, d, dist, group, sum) > 65535) continue;
        LayerShape shape;
        shape.kv_heads = group == 3 ? 2 : 2 + index % 2;
        shape.head_dim = d;
        shape.page_size = kPages[index % 6];
        shape.bits = bits;
        LayerContent content;
        content.kv = false;
        TestLayer t = make_test_layer(shape, {65, 1, 129, 300}, 3000 + index, content);
        check_estimate(t, EstCase{group, dist, sum, true}, 4000 + index);
        if (HasFatalFailure()) return;
      }
    }
}

// The same layer estimated twice with different queries: the second call's distances are its
// own (no state kept between calls), and the accumulated histogram is the sum of both.
TEST_F(CudaEstimate, RepeatedCallsAreIndependent) {
  LayerShape shape;
  shape.kv_heads = 2;
  shape.head_dim = 128;
  shape.page_size = 16;
  shape.bits = 2;
  LayerContent content;
  content.kv = false;
  TestLayer t = make_test_layer(shape, {100, 37, 500}, 77, content);
  for (int rep = 0; rep < 3; ++rep) {
    check_estimate(t, EstCase{4, rep == 1 ? Distance::kL2 : Distance::kL1, rep == 2, false},
                   78 + rep);
    if (HasFatalFailure()) return;
  }
}

// One sequence of ~70000 tokens among short ones: rows spread over many blocks.
TEST_F(CudaEstimate, LargeSequenceMatchesReference) {
  struct Big {
    int bits, d, group, page;
    Distance dist;
    bool sum, excl;
  };
  const Big cases[] = {
      {2, 128, 4, 64, Distance::kL1, false, false},
      {3, 128, 2, 16, Distance::kL2, true, true},
      {1, 64, 8, 5, Distance::kL1, true, true},
      {2, 256, 3, 64, Distance::kL2, false, true},
  };
  int index = 0;
  for (const Big& c : cases) {
    ++index;
    LayerShape shape;
    shape.kv_heads = c.group == 3 ? 2 : 1 + index % 2;
    shape.head_dim = c.d;
    shape.page_size = c.page;
    shape.bits = c.bits;
    LayerContent content;
    content.kv = false;
    TestLayer t = make_test_layer(shape, {1, 70001 + index, 4097, 65}, 5000 + index, content);
    check_estimate(t, EstCase{c.group, c.dist, c.sum, c.excl}, 6000 + index);
    if (HasFatalFailure()) return;
  }
}

// Codes that really come from keys (compute_buckets of stored keys with per-head thresholds,
// written by encode_keys), not random buckets: same exact agreement.
TEST_F(CudaEstimate, EncodedKeysMatchReference) {
  for (int bits : {1, 2, 3}) {
    LayerShape shape;
    shape.kv_heads = 2;
    shape.head_dim = 64;
    shape.page_size = 16;
    shape.bits = bits;
    shape.hadamard = bits != 2;
    TestLayer t = make_test_layer(shape, {300, 17}, 7000 + bits);
    // Re-encode every used slot from the stored keys.
    const CodeSpec spec = t.spec();
    const int P = shape.page_size;
    for (int h = 0; h < shape.kv_heads; ++h)
      for (int b = 0; b < t.batch_size(); ++b)
        for (int pi = 0; pi * P < t.lengths[b]; ++pi) {
          const int32_t page = t.pages[b][pi];
          encode_keys(spec, t.thresholds[h], t.k_host.data() + t.kv_offset(h, page, 0), shape.dtype,
                      std::min(P, t.lengths[b] - pi * P), shape.head_dim,
                      t.codes_host.data() + t.code_page_offset(h, page), code_slot_stride(P), 0);
        }
    upload_array(t.codes_dev.data(), t.codes_host);
    check_estimate(t, EstCase{2, Distance::kL1, false, true}, 7100 + bits);
    check_estimate(t, EstCase{2, Distance::kL2, true, false}, 7200 + bits);
    if (HasFatalFailure()) return;
  }
}

}  // namespace
}  // namespace adamas::test
