// DeviceKVCache bookkeeping: layer() describes the pools as device_layer.h says (fields from the
// config, non-overlapping (head, page) blocks, per-head thresholds on the device), thresholds()
// defaults, batch() uploads the CSR page tables and lengths of the given sequences in the given
// order, page ownership and free counts through add / remove, truncate (then appending again)
// against the CPU cache doing the same, bytes().
#include "cuda_test_util.h"

namespace adamas::test {
namespace {

class CudaDeviceCache : public CudaTest {};

CacheConfig config_of(int layers, int kv_heads, int d, int P, int pages, DType dt, int bits,
                      bool hadamard) {
  CacheConfig c;
  c.num_layers = layers;
  c.num_kv_heads = kv_heads;
  c.head_dim = d;
  c.page_size = P;
  c.num_pages = pages;
  c.dtype = dt;
  c.codes.bits = bits;
  c.codes.hadamard = hadamard;
  return c;
}

// Start offsets of every (head, page) block, sorted: consecutive ones at least `block` apart.
::testing::AssertionResult blocks_disjoint(size_t head_stride, size_t page_stride, int heads,
                                           int pages, size_t block) {
  std::vector<size_t> starts;
  for (int h = 0; h < heads; ++h)
    for (int p = 0; p < pages; ++p) starts.push_back(h * head_stride + size_t(p) * page_stride);
  std::sort(starts.begin(), starts.end());
  for (size_t i = 1; i < starts.size(); ++i)
    if (starts[i] - starts[i - 1] < block)
      return ::testing::AssertionFailure() << "blocks at " << starts[i - 1] << " and " << starts[i]
                                           << " overlap (block size " << block << ")";
  return ::testing::AssertionSuccess();
}

TEST_F(CudaDeviceCache, LayerDescribesThePools) {
  for (int bits : {1, 2, 3}) {
    const CacheConfig c = config_of(2, 3, 64 << (bits - 1), 5 + bits * 4, 11,
                                    bits == 2 ? DType::kBF16 : DType::kF16, bits, bits != 3);
    cuda::DeviceKVCache cache(c);
    EXPECT_EQ(cache.free_pages(), 11);
    EXPECT_GT(cache.bytes(), 0u);
    for (int l = 0; l < 2; ++l) {
      SCOPED_TRACE("bits " + std::to_string(bits) + " layer " + std::to_string(l));
      const cuda::DeviceLayer L = cache.layer(l);
      EXPECT_NO_THROW(L.validate());
      EXPECT_NE(L.k_pool, nullptr);
      EXPECT_NE(L.v_pool, nullptr);
      EXPECT_NE(L.code_pool, nullptr);
      EXPECT_NE(L.thresholds, nullptr);
      EXPECT_EQ(L.num_kv_heads, c.num_kv_heads);
      EXPECT_EQ(L.head_dim, c.head_dim);
      EXPECT_EQ(L.page_size, c.page_size);
      EXPECT_EQ(L.dtype, c.dtype);
      EXPECT_EQ(L.bits, bits);
      EXPECT_EQ(L.hadamard, c.codes.hadamard);
      EXPECT_EQ(L.words(), (c.head_dim + 63) / 64);
      EXPECT_EQ(L.slot_stride(), code_slot_stride(c.page_size));
      const size_t kv_block = size_t(c.page_size) * c.head_dim * dtype_size(c.dtype);
      const size_t code_block = size_t(bits) * L.words() * L.slot_stride();
      EXPECT_TRUE(blocks_disjoint(L.kv_head_stride, L.kv_page_stride, c.num_kv_heads, c.num_pages,
                                  kv_block));
      EXPECT_TRUE(blocks_disjoint(L.code_head_stride, L.code_page_stride, c.num_kv_heads,
                                  c.num_pages, code_block));
      if (l == 1) {
        EXPECT_NE(L.k_pool, cache.layer(0).k_pool) << "layers share a pool";
        EXPECT_NE(L.code_pool, cache.layer(0).code_pool) << "layers share a code pool";
      }
      // Thresholds: the defaults of the code spec, on the host and on the device.
      const auto want = default_thresholds(bits);
      const auto dev = download_array(L.thresholds, size_t(c.num_kv_heads) * kMaxThermoPlanes);
      for (int h = 0; h < c.num_kv_heads; ++h) {
        EXPECT_EQ(cache.thresholds(l, h), want) << "head " << h;
        for (size_t i = 0; i < want.size(); ++i)
          EXPECT_EQ(dev[size_t(h) * kMaxThermoPlanes + i], want[i])
              << "head " << h << " threshold " << i;
      }
    }
  }
}

TEST_F(CudaDeviceCache, ExplicitAndPerHeadThresholds) {
  CacheConfig c = config_of(2, 3, 128, 16, 4, DType::kF16, 2, true);
  c.codes.thresholds = {-0.5f, 0.0f, 0.75f};
  cuda::DeviceKVCache cache(c);
  for (int l = 0; l < 2; ++l)
    for (int h = 0; h < 3; ++h) EXPECT_EQ(cache.thresholds(l, h), c.codes.thresholds);
  const std::vector<float> t = {-1.0f, 0.25f, 2.0f};
  cache.set_thresholds(1, 2, t);  // no keys stored yet: only the thresholds change
  EXPECT_EQ(cache.thresholds(1, 2), t);
  EXPECT_EQ(cache.thresholds(1, 1), c.codes.thresholds);
  EXPECT_EQ(cache.thresholds(0, 2), c.codes.thresholds);
  const auto dev1 = download_array(cache.layer(1).thresholds, 3 * kMaxThermoPlanes);
  const auto dev0 = download_array(cache.layer(0).thresholds, 3 * kMaxThermoPlanes);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(dev1[2 * kMaxThermoPlanes + i], t[i]);
    EXPECT_EQ(dev1[1 * kMaxThermoPlanes + i], c.codes.thresholds[i]);
    EXPECT_EQ(dev0[2 * kMaxThermoPlanes + i], c.codes.thresholds[i]);
  }
}

// batch() uploads the page tables and lengths of the given sequences in the given order, for the
// given layer; the view is what the kernels read.
TEST_F(CudaDeviceCache, BatchUploadsPageTablesAndLengths) {
  CacheConfig c = config_of(2, 2, 32, 7, 40, DType::kBF16, 1, false);
  TwinCache tc(c, DType::kF32, 11);
  for (int s = 0; s < 4; ++s) tc.add_sequence();
  tc.fill(0, {0, 1, 2, 3}, {50, 1, 20, 70}, 9);
  tc.fill(1, {0, 1, 2, 3}, {3, 14, 21, 70}, 9);
  for (int layer : {0, 1})
    for (const std::vector<int>& order : {std::vector<int>{0, 1, 2, 3}, std::vector<int>{3, 1},
                                          std::vector<int>{2}, std::vector<int>{1, 2, 0, 3}}) {
      SCOPED_TRACE("layer " + std::to_string(layer) + ", " + std::to_string(order.size()) +
                   " sequences");
      const auto ids = tc.gpu_ids(order);
      const cuda::DeviceBatch b = tc.gpu->batch(layer, ids);
      ASSERT_EQ(b.batch, static_cast<int>(order.size()));
      EXPECT_NO_THROW(b.validate());
      const auto lengths = download_array(b.lengths, order.size());
      int max_len = 0;
      for (size_t i = 0; i < order.size(); ++i) {
        const int len = tc.gpu->length(layer, ids[i]);
        EXPECT_EQ(len, tc.cpu->length(layer, tc.cpu_seqs[order[i]]));
        EXPECT_EQ(lengths[i], len) << "entry " << i;
        max_len = std::max(max_len, len);
      }
      EXPECT_GE(b.max_length, max_len);
      // CSR: entry i's pages are page_indices[page_indptr[i] ..], the first pages of its table.
      const auto indptr = download_array(b.page_indptr, order.size() + 1);
      EXPECT_EQ(indptr[0], 0);
      const auto indices = download_array(b.page_indices, size_t(indptr.back()));
      for (size_t i = 0; i < order.size(); ++i) {
        const auto pt = tc.gpu->page_table(ids[i]);
        const int used = c.pages_for(lengths[i]);
        ASSERT_EQ(indptr[i + 1] - indptr[i], used) << "entry " << i;
        ASSERT_GE(static_cast<int>(pt.size()), used);
        for (int p = 0; p < used; ++p)
          EXPECT_EQ(indices[indptr[i] + p], pt[p]) << "entry " << i << " page " << p;
      }
      // The same tables as the CPU cache's bookkeeping builds for the same batch.
      const BatchTables want = tc.cpu->page_tables().batch(tc.cpu_ids(order), layer);
      EXPECT_EQ(indptr, want.page_indptr);
      EXPECT_EQ(indices, want.page_indices);
      EXPECT_EQ(lengths, want.lengths);
      EXPECT_EQ(b.max_length, want.max_length);
    }
}

// Pages are owned by one sequence at a time; removal returns them; ids are not reused.
TEST_F(CudaDeviceCache, PageOwnershipAndReuse) {
  CacheConfig c = config_of(1, 1, 16, 4, 10, DType::kF16, 2, true);
  TwinCache tc(c, DType::kF16, 12);
  const int a = tc.add_sequence(), b = tc.add_sequence();
  tc.append(0, a, 9);  // 3 pages
  tc.append(0, b, 4);  // 1 page
  EXPECT_EQ(tc.gpu->free_pages(), 6);
  EXPECT_EQ(tc.gpu->page_table(tc.gpu_seqs[a]).size(), 3u);
  EXPECT_EQ(tc.gpu->page_table(tc.gpu_seqs[b]).size(), 1u);
  tc.append(0, b, 1);  // a new page for b
  EXPECT_EQ(tc.gpu->free_pages(), 5);
  tc.remove_sequence(a);
  EXPECT_EQ(tc.gpu->free_pages(), 8);
  const int n = tc.add_sequence();
  EXPECT_NE(tc.gpu_seqs[n], tc.gpu_seqs[a]) << "sequence ids are not reused";
  tc.append(0, n, 32);  // 8 pages: every free one
  EXPECT_EQ(tc.gpu->free_pages(), 0);
  std::set<int32_t> pages;
  for (int s : {b, n})
    for (int32_t p : tc.gpu->page_table(tc.gpu_seqs[s])) EXPECT_TRUE(pages.insert(p).second) << p;
  EXPECT_EQ(pages.size(), 10u);
  EXPECT_EQ(tc.gpu->length(0, tc.gpu_seqs[n]), 32);
  EXPECT_EQ(tc.gpu->length(0, tc.gpu_seqs[b]), 5);
}

// Every stored K/V row and key-code word of `seqs` in every layer, the page tables (the same page
// ids: both caches keep their pages with PageTables), lengths, free pages and batch() tables,
// against the CPU cache.
void expect_same_as_cpu(const TwinCache& tc, const std::vector<int>& seqs) {
  expect_same_contents(tc, seqs);
  if (::testing::Test::HasFatalFailure()) return;
  for (int s : seqs) {
    const auto g = tc.gpu->page_table(tc.gpu_seqs[s]), cp = tc.cpu->page_table(tc.cpu_seqs[s]);
    ASSERT_EQ(std::vector<int32_t>(g.begin(), g.end()), std::vector<int32_t>(cp.begin(), cp.end()))
        << "page table of sequence " << s;
  }
  for (int l = 0; l < tc.config.num_layers; ++l) {
    std::vector<int> with_tokens;
    for (int s : seqs)
      if (tc.cpu->length(l, tc.cpu_seqs[s]) > 0) with_tokens.push_back(s);
    if (with_tokens.empty()) continue;
    const cuda::DeviceBatch b = tc.gpu->batch(l, tc.gpu_ids(with_tokens));
    const BatchTables want = tc.cpu->page_tables().batch(tc.cpu_ids(with_tokens), l);
    const auto indptr = download_array(b.page_indptr, with_tokens.size() + 1);
    EXPECT_EQ(indptr, want.page_indptr) << "layer " << l;
    EXPECT_EQ(download_array(b.page_indices, want.page_indices.size()), want.page_indices);
    EXPECT_EQ(download_array(b.lengths, with_tokens.size()), want.lengths);
    EXPECT_EQ(b.max_length, want.max_length);
  }
}

// truncate() shortens every layer and frees the pages no longer used, as the CPU cache does;
// appending again (prefill chunks and decode steps) writes the same bytes and codes as the CPU.
TEST_F(CudaDeviceCache, TruncateThenAppendMatchesCpu) {
  for (int P : {1, 5, 16}) {
    SCOPED_TRACE("page size " + std::to_string(P));
    CacheConfig c = config_of(2, 2, 64, P, 0, DType::kF16, 2, true);
    c.num_pages = pages_needed(c, {90, 60, 40}, 4);
    TwinCache tc(c, DType::kF32, 40 + P);
    const std::vector<int> all = {0, 1, 2};
    for (int s = 0; s < 3; ++s) tc.add_sequence();
    tc.fill(0, all, {80, 37, 21}, 13);
    tc.fill(1, all, {50, 37, 3}, 13);  // layers of different lengths
    expect_same_as_cpu(tc, all);
    if (HasFatalFailure()) return;
    const int free_before = tc.gpu->free_pages();
    // Inside a page, at a page boundary, longer than a layer, to zero.
    const std::vector<std::pair<int, int>> cuts = {{0, 33}, {1, 2 * P}, {2, 10}};
    for (const auto& [s, len] : cuts) {
      tc.cpu->truncate(tc.cpu_seqs[s], len);
      tc.gpu->truncate(tc.gpu_seqs[s], len);
    }
    EXPECT_EQ(tc.gpu->length(0, tc.gpu_seqs[0]), 33);
    EXPECT_EQ(tc.gpu->length(1, tc.gpu_seqs[0]), 33);
    EXPECT_EQ(tc.gpu->length(0, tc.gpu_seqs[1]), 2 * P);
    EXPECT_EQ(tc.gpu->length(1, tc.gpu_seqs[2]), 3);  // shorter already: kept
    EXPECT_EQ(tc.gpu->page_table(tc.gpu_seqs[0]).size(), size_t(c.pages_for(33)));
    EXPECT_GT(tc.gpu->free_pages(), free_before);
    expect_same_as_cpu(tc, all);
    if (HasFatalFailure()) return;
    // Append again: chunks into the freed pages, then decode steps of one token per sequence.
    tc.fill(0, all, {70, 45, 30}, 11);
    tc.fill(1, all, {41, 45, 30}, 11);
    for (int step = 0; step < 3; ++step)
      for (int l = 0; l < 2; ++l) tc.append_batch(l, all);
    expect_same_as_cpu(tc, all);
    if (HasFatalFailure()) return;
    // To zero and regrow; errors as on the CPU.
    tc.cpu->truncate(tc.cpu_seqs[1], 0);
    tc.gpu->truncate(tc.gpu_seqs[1], 0);
    EXPECT_TRUE(tc.gpu->page_table(tc.gpu_seqs[1]).empty());
    tc.append(0, 1, 7);
    tc.append(1, 1, 7);
    expect_same_as_cpu(tc, all);
    if (HasFatalFailure()) return;
    EXPECT_THAT(error_message([&] { tc.gpu->truncate(tc.gpu_seqs[0], -1); }), HasSubstr("-1"));
    EXPECT_THAT(error_message([&] { tc.gpu->truncate(99, 1); }), HasSubstr("sequence id 99"));
  }
}

}  // namespace
}  // namespace adamas::test
