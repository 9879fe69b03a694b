// kernels.h select_smallest (TopKArgs): per row the positions of the k smallest values in
// ascending order, ties to the lower position, exactly adamas::ref::select_smallest; with
// add_current, ref select of budget − 1 among the first length − 1 positions and then length − 1.
// Ragged lengths, several rows per sequence, heavy ties, k from 0 to ≥ n, histograms built like
// estimate builds them (counts of each row's first n values) that must be all zero on return,
// counts[] checked, outputs poisoned (nothing written past a row's count), garbage (also values
// ≥ histogram_size) in every value position ≥ n.
#include "adamas/core/topk.h"

#include "cuda_test_util.h"

namespace adamas::test {
namespace {

class CudaTopK : public CudaTest {};

enum class Values { kTies, kSmall, kWide, kAllEqual, kSkewed };

const char* values_name(Values v) {
  switch (v) {
    case Values::kTies:
      return "ties(0..3)";
    case Values::kSmall:
      return "small(0..50)";
    case Values::kWide:
      return "wide";
    case Values::kAllEqual:
      return "all equal";
    case Values::kSkewed:
      return "skewed";
  }
  return "?";
}

struct TopKCase {
  std::vector<int> lengths;  // per sequence, ≥ 1
  int rows_per_seq = 1;
  int budget = 1;
  bool add_current = false;
  int hist_size = 64;
  Values values = Values::kTies;
  int max_length_slack = 0;
  std::string name() const {
    std::ostringstream s;  // (not operator+: GCC 12 warns falsely about it at -O3)
    s << "budget " << budget << (add_current ? " add_current" : "") << " rows/seq " << rows_per_seq
      << " hist " << hist_size << " " << values_name(values) << " lengths";
    for (int l : lengths) s << " " << l;
    return s.str();
  }
};

uint16_t draw(FastRng& r, Values v, int hist_size) {
  const int top = hist_size - 1;
  switch (v) {
    case Values::kTies:
      return static_cast<uint16_t>(std::min(top, r.uniform_int(0, 3)));
    case Values::kSmall:
      return static_cast<uint16_t>(std::min(top, r.uniform_int(0, 50)));
    case Values::kWide:
      return static_cast<uint16_t>(r.uniform_int(0, top));
    case Values::kAllEqual:
      return static_cast<uint16_t>(top);
    case Values::kSkewed:  // mostly the largest value, a few small ones, some in between
      return static_cast<uint16_t>(r.next() % 16 == 0  ? r.uniform_int(0, 5)
                                   : r.next() % 4 == 0 ? r.uniform_int(0, top)
                                                       : top);
  }
  return 0;
}

// Runs one select over the batch and checks every row. `scratch` is reused across calls.
void check_topk(const TopKCase& c, uint64_t seed, DeviceBuffer<uint32_t>& scratch,
                bool poison_scratch) {
  SCOPED_TRACE(c.name());
  FastRng r(seed);
  const int B = static_cast<int>(c.lengths.size()), R = c.rows_per_seq, rows = B * R;
  const int max_length = *std::max_element(c.lengths.begin(), c.lengths.end());
  const size_t vstride = size_t(max_length) + c.max_length_slack + 7;  // ≥ args.max_length
  const int hs = c.hist_size;
  const int sub = c.add_current ? 1 : 0;
  std::vector<uint16_t> values(size_t(rows) * vstride);
  std::vector<uint32_t> hist(size_t(rows) * hs, 0);
  for (int row = 0; row < rows; ++row) {
    const int n = c.lengths[row / R] - sub;
    uint16_t* v = values.data() + size_t(row) * vstride;
    for (size_t pos = 0; pos < vstride; ++pos) {
      // Positions ≥ n are garbage: any 16-bit value, also ≥ hist_size.
      v[pos] = static_cast<int>(pos) < n ? draw(r, c.values, hs) : static_cast<uint16_t>(r.next());
      if (static_cast<int>(pos) < n) ++hist[size_t(row) * hs + v[pos]];
    }
  }
  auto values_dev = to_device(values);
  auto hist_dev = to_device(hist);
  auto lengths_dev = to_device(std::vector<int32_t>(c.lengths.begin(), c.lengths.end()));
  const size_t ostride = size_t(c.budget) + 3;
  DeviceBuffer<int32_t> out(size_t(rows) * ostride), counts(rows);
  out.fill_bytes(0xff);
  counts.fill_bytes(0xff);
  const size_t words = cuda::select_scratch_words(rows, max_length + c.max_length_slack);
  scratch.resize(std::max<size_t>(words, 1));
  if (poison_scratch) scratch.fill_bytes(0xff);

  cuda::TopKArgs a;
  a.values = values_dev.data();
  a.value_stride = vstride;
  a.histogram = hist_dev.data();
  a.histogram_size = hs;
  a.lengths = lengths_dev.data();
  a.rows_per_seq = R;
  a.rows = rows;
  a.max_length = max_length + c.max_length_slack;
  a.budget = c.budget;
  a.add_current = c.add_current;
  a.out = out.data();
  a.out_stride = ostride;
  a.counts = counts.data();
  cuda::select_smallest(a, scratch.data(), nullptr);
  const auto got = download_array(out.data(), size_t(rows) * ostride);
  const auto got_counts = download_array(counts.data(), rows);
  const auto got_hist = download_array(hist_dev.data(), size_t(rows) * hs);

  for (int row = 0; row < rows; ++row) {
    const int len = c.lengths[row / R], n = len - sub;
    const int k = c.budget - sub;
    SCOPED_TRACE("row " + std::to_string(row) + " length " + std::to_string(len));
    std::vector<int32_t> want(std::max(std::min(k, n), 0) + 1);
    const int cnt = ref::select_smallest(values.data() + size_t(row) * vstride, n, k, want.data());
    want.resize(cnt);
    if (c.add_current) want.push_back(len - 1);
    ASSERT_EQ(got_counts[row], static_cast<int32_t>(want.size())) << "counts[" << row << "]";
    const int32_t* g = got.data() + size_t(row) * ostride;
    for (size_t i = 0; i < want.size(); ++i)
      ASSERT_EQ(g[i], want[i]) << "selected position " << i << " of " << want.size();
    for (size_t i = want.size(); i < ostride; ++i)
      ASSERT_EQ(g[i], -1) << "wrote entry " << i << " past the count " << want.size();
    for (int v = 0; v < hs; ++v)
      ASSERT_EQ(got_hist[size_t(row) * hs + v], 0u) << "histogram not cleared at value " << v;
  }
}

// Ragged lengths × rows per sequence × value distributions × budgets around and beyond n, with
// and without add_current.
TEST_F(CudaTopK, MatchesReference) {
  const std::vector<int> lengths = {1, 2, 7, 64, 100, 1000, 4097, 5000};
  DeviceBuffer<uint32_t> scratch;
  int index = 0;
  for (Values vals :
       {Values::kTies, Values::kSmall, Values::kWide, Values::kAllEqual, Values::kSkewed})
    for (int R : {1, 3})
      for (bool add : {false, true})
        for (int budget : {1, 2, 5, 64, 256, 4096, 4097, 5000, 5001, 20000}) {
          ++index;
          TopKCase c;
          c.lengths = lengths;
          c.rows_per_seq = R;
          c.budget = budget;
          c.add_current = add;
          c.values = vals;
          c.hist_size = vals == Values::kWide ? 12545 : (index % 3 == 0 ? 51 : 2305);
          c.max_length_slack = index % 4 == 0 ? 9 : 0;
          check_topk(c, 100 + index, scratch, false);
          if (HasFatalFailure()) return;
        }
}

// Many rows per sequence (a GQA group of 8 query heads) over a few sequences, random budgets.
TEST_F(CudaTopK, ManyRowsPerSequence) {
  DeviceBuffer<uint32_t> scratch;
  FastRng r(5);
  for (int rep = 0; rep < 12; ++rep) {
    TopKCase c;
    for (int s = 0; s < 1 + rep % 4; ++s) c.lengths.push_back(r.uniform_int(1, 3000));
    c.rows_per_seq = 8;
    c.budget = r.uniform_int(1, 3500);
    c.add_current = rep % 2 == 1;
    c.values = rep % 3 == 0 ? Values::kTies : Values::kSmall;
    c.hist_size = 51 + rep;
    check_topk(c, 500 + rep, scratch, false);
    if (HasFatalFailure()) return;
  }
}

// Budget 0 (k = 0) selects nothing (counts 0) and still clears the histogram; budget 1 with
// add_current (k = 0) selects only the current token.
TEST_F(CudaTopK, ZeroKSelectsNothingOrOnlyTheCurrentToken) {
  DeviceBuffer<uint32_t> scratch;
  TopKCase c;
  c.lengths = {1, 5, 300};
  c.rows_per_seq = 2;
  c.values = Values::kTies;
  c.budget = 0;
  check_topk(c, 900, scratch, false);
  c.budget = 1;
  c.add_current = true;
  check_topk(c, 901, scratch, false);
}

// The full histogram range of 16-bit distances (65536 counters per row).
TEST_F(CudaTopK, FullSixteenBitHistogram) {
  DeviceBuffer<uint32_t> scratch;
  for (Values vals : {Values::kWide, Values::kSkewed, Values::kAllEqual})
    for (int budget : {1, 33, 1000, 3000}) {
      TopKCase c;
      c.lengths = {3000, 17, 2500};
      c.rows_per_seq = 1;
      c.budget = budget;
      c.add_current = budget % 2 == 1;
      c.values = vals;
      c.hist_size = 65536;
      check_topk(c, 1000 + budget, scratch, false);
      if (HasFatalFailure()) return;
    }
}

// select_smallest must not depend on what its scratch holds on entry.
TEST_F(CudaTopK, ScratchContentsDoNotMatter) {
  DeviceBuffer<uint32_t> scratch;
  int index = 0;
  for (bool add : {false, true})
    for (int budget : {1, 64, 999, 5000}) {
      TopKCase c;
      c.lengths = {4097, 1, 1000, 4096};
      c.rows_per_seq = 2;
      c.budget = budget;
      c.add_current = add;
      c.values = Values::kSmall;
      c.hist_size = 51;
      check_topk(c, 1200 + index++, scratch, true);
      if (HasFatalFailure()) return;
    }
}

// Rows of ~200000 values (many chunks per row), ties and wide values.
TEST_F(CudaTopK, LargeRowsMatchReference) {
  DeviceBuffer<uint32_t> scratch;
  int index = 0;
  for (Values vals : {Values::kTies, Values::kWide, Values::kSkewed})
    for (bool add : {false, true})
      for (int budget : {1, 64, 4096, 100000, 199999, 200001}) {
        TopKCase c;
        c.lengths = {200001, 150001, 3};
        c.rows_per_seq = 2;
        c.budget = budget;
        c.add_current = add;
        c.values = vals;
        c.hist_size = vals == Values::kWide ? 6913 : 97;
        check_topk(c, 1500 + index++, scratch, false);
        if (HasFatalFailure()) return;
      }
}

}  // namespace
}  // namespace adamas::test
