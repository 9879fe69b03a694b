// DeviceKVCache vs PagedKVCache fed the same appends: for every token of every (layer, sequence,
// KV head), the stored K/V bytes and the key-code words read from the downloaded device pools (at
// the device's own page table) equal the CPU cache's bit for bit. Cache dtype f16/bf16 × source
// dtype f32/f16/bf16 × head_dim 16..256 × page sizes (1, 5, 13, 16, 64) × 1..4 KV heads × bits
// 1/2/3 × Hadamard on/off, per-head random thresholds (some on a grid that stored keys hit
// exactly), prefill chunks of awkward sizes interleaved over 3 sequences, single tokens through
// append_batch, removal and page reuse, and set_thresholds re-encoding.
#include "cuda_test_util.h"

namespace adamas::test {
namespace {

class CudaAppend : public CudaTest {};

constexpr int kDims[] = {16, 32, 64, 128, 256};
constexpr int kPages[] = {5, 16, 64, 1, 13};

CacheConfig make_config(int index, DType cache, int d, int layers, int num_pages) {
  CacheConfig c;
  c.num_layers = layers;
  c.num_kv_heads = 1 + index % 4;
  c.head_dim = d;
  c.page_size = kPages[index % 5];
  c.num_pages = num_pages;
  c.dtype = cache;
  c.store_codes = true;
  c.codes.bits = 1 + index % 3;
  c.codes.hadamard = index % 2 == 0;
  c.store_page_minmax = index % 3 == 0;  // ignored by the device cache
  return c;
}

std::string config_name(const CacheConfig& c, DType src) {
  return std::string("cache ") + dtype_str(c.dtype) + " src " + dtype_str(src) + " d " +
         std::to_string(c.head_dim) + " page " + std::to_string(c.page_size) + " kv heads " +
         std::to_string(c.num_kv_heads) + " bits " + std::to_string(c.codes.bits) +
         (c.codes.hadamard ? " hadamard" : " no-hadamard");
}

// Random per-head thresholds in every layer, set on both caches (even heads on the grid).
void random_thresholds_everywhere(TwinCache& tc, FastRng& r) {
  for (int l = 0; l < tc.config.num_layers; ++l)
    for (int h = 0; h < tc.config.num_kv_heads; ++h)
      tc.set_thresholds(l, h, random_thresholds(r, tc.config.codes.bits, (h + l) % 2 == 0));
}

TEST_F(CudaAppend, MatchesCpuCacheBitForBit) {
  int index = 0;
  for (DType cache : {DType::kF16, DType::kBF16})
    for (DType src : {DType::kF32, DType::kF16, DType::kBF16})
      for (int d : kDims) {
        ++index;
        const std::vector<int> lengths = {1 + index % 7, 90 + index, 203};
        CacheConfig probe = make_config(index, cache, d, 2, 1);
        // Room for the fill, the decode steps below, and a few spare pages.
        const int pages = pages_needed(probe, {lengths[0] + 8, lengths[1] + 8, lengths[2] + 8}, 3);
        const CacheConfig c = make_config(index, cache, d, 2, pages);
        SCOPED_TRACE(config_name(c, src));
        TwinCache tc(c, src, 100 + index);
        tc.value_specials = true;
        FastRng r(200 + index);
        random_thresholds_everywhere(tc, r);
        for (int s = 0; s < 3; ++s) tc.add_sequence();
        // Layer 1 first, partly, then layer 0 (a sequence's layers grow independently).
        tc.fill(1, {0, 1, 2}, {lengths[0], lengths[1] / 2, lengths[2] / 3});
        tc.fill(0, {0, 1, 2}, lengths);
        tc.fill(1, {0, 1, 2}, lengths);
        // Decode steps: one token per sequence, all and a subset, in one launch each.
        for (int step = 0; step < 3; ++step)
          for (int l = 0; l < 2; ++l) tc.append_batch(l, {0, 1, 2});
        tc.append_batch(0, {2, 0});
        tc.append_batch(1, {2, 0});
        expect_same_contents(tc, {0, 1, 2});
        if (HasFatalFailure()) return;
      }
}

// A prefill chunk of thousands of tokens in one append, then decode steps.
TEST_F(CudaAppend, LongPrefillThenDecode) {
  int index = 0;
  for (int bits : {1, 2, 3}) {
    ++index;
    CacheConfig c = make_config(index, bits == 2 ? DType::kBF16 : DType::kF16, 128, 1, 1);
    c.codes.bits = bits;
    c.num_kv_heads = 2;
    c.num_pages = pages_needed(c, {3000, 1200}, 4);
    SCOPED_TRACE(config_name(c, DType::kF32));
    TwinCache tc(c, DType::kF32, 300 + index);
    FastRng r(310 + index);
    random_thresholds_everywhere(tc, r);
    tc.add_sequence();
    tc.add_sequence();
    tc.append(0, 1, 7);
    tc.append(0, 0, 2989);
    tc.append(0, 1, 1190);
    for (int step = 0; step < 5; ++step) tc.append_batch(0, {0, 1});
    expect_same_contents(tc, {0, 1});
  }
}

// Removing a sequence frees its pages; new appends (to old and new sequences) reuse them. The
// page ids may differ from the CPU's; the contents may not.
TEST_F(CudaAppend, RemoveAndReusePages) {
  for (int index : {3, 7, 10}) {
    const std::vector<int> lengths = {150, 77, 260};
    CacheConfig c = make_config(index, index % 2 ? DType::kF16 : DType::kBF16, 64, 2, 1);
    // A tight pool: the second fill only fits in the pages the removal freed.
    c.num_pages =
        std::max(pages_needed(c, lengths, 0), pages_needed(c, {150 + 60, 260 + 60, 120}, 0));
    SCOPED_TRACE(config_name(c, DType::kF16));
    TwinCache tc(c, DType::kF16, 400 + index);
    FastRng r(410 + index);
    random_thresholds_everywhere(tc, r);
    for (int s = 0; s < 3; ++s) tc.add_sequence();
    for (int l = 0; l < 2; ++l) tc.fill(l, {0, 1, 2}, lengths);
    const int free_before = tc.gpu->free_pages();
    tc.remove_sequence(1);
    EXPECT_EQ(tc.gpu->free_pages(), free_before + c.pages_for(77));
    EXPECT_EQ(tc.gpu->free_pages(), tc.cpu->free_pages());
    tc.add_sequence();  // index 3
    for (int l = 0; l < 2; ++l) tc.fill(l, {0, 2, 3}, {150 + 60, 260 + 60, 120}, 23);
    expect_same_contents(tc, {0, 2, 3});
  }
}

// set_thresholds re-encodes every stored key of that layer and head (all live sequences), like
// the CPU cache, and leaves the other layer's and heads' codes alone.
TEST_F(CudaAppend, SetThresholdsReencodesLikeCpu) {
  int index = 0;
  for (int bits : {1, 2, 3})
    for (bool hadamard : {true, false}) {
      ++index;
      CacheConfig c =
          make_config(index, index % 2 ? DType::kF16 : DType::kBF16, 32 << (index % 3), 2, 1);
      c.codes.bits = bits;
      c.codes.hadamard = hadamard;
      c.num_kv_heads = 3;
      const std::vector<int> lengths = {33, 200, 9};
      c.num_pages = pages_needed(c, lengths, 2);
      SCOPED_TRACE(config_name(c, DType::kF32));
      TwinCache tc(c, DType::kF32, 500 + index);
      FastRng r(510 + index);
      for (int s = 0; s < 3; ++s) tc.add_sequence();
      // Filled with the default thresholds, then re-encoded with random ones, head by head.
      for (int l = 0; l < 2; ++l) tc.fill(l, {0, 1, 2}, lengths);
      expect_same_contents(tc, {0, 1, 2});
      for (int h : {1, 0, 2}) {
        const auto t = random_thresholds(r, bits, h != 1);
        tc.set_thresholds(1, h, t);
        EXPECT_EQ(tc.gpu->thresholds(1, h), t);
        expect_same_contents(tc, {0, 1, 2});
        if (HasFatalFailure()) return;
      }
    }
}

}  // namespace
}  // namespace adamas::test
