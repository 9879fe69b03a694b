// Bad inputs throw adamas::Error on the host, before anything is launched, with a message that
// names the problem: DeviceKVCache configs (dtype, head_dim, bits, store_codes, ...), a full pool
// (the sequence unchanged afterwards), unknown layers / sequences / heads, thresholds; and for the
// kernels: num_q_heads not a multiple of num_kv_heads, null pointers, strides smaller than what
// they must hold, budgets, distances that overflow 16 bits, bad DeviceLayer / DeviceBatch fields.
// The fixture's TearDown checks that no CUDA error was left behind.
#include <functional>
#include <utility>
#include <vector>

#include "cuda_test_util.h"

namespace adamas::test {
namespace {

class CudaErrors : public CudaTest {};

using ::testing::AnyOf;
using ::testing::Not;
using ::testing::StartsWith;

// An adamas::Error was thrown (not another exception, not nothing).
#define EXPECT_ADAMAS_ERROR(stmt, matcher)                 \
  do {                                                     \
    const std::string msg_ = error_message([&] { stmt; }); \
    EXPECT_THAT(msg_, Not(StartsWith("<"))) << #stmt;      \
    EXPECT_THAT(msg_, matcher) << #stmt;                   \
  } while (0)

CacheConfig good_config() {
  CacheConfig c;
  c.num_layers = 2;
  c.num_kv_heads = 2;
  c.head_dim = 64;
  c.page_size = 16;
  c.num_pages = 8;
  c.dtype = DType::kF16;
  c.codes.bits = 2;
  return c;
}

TEST_F(CudaErrors, DeviceKVCacheRejectsBadConfigs) {
  EXPECT_NO_THROW(cuda::DeviceKVCache{good_config()});
  // One bad field at a time, and the word the message must name.
  const std::vector<std::pair<std::function<void(CacheConfig&)>, const char*>> cases = {
      {[](CacheConfig& c) { c.dtype = DType::kF32; }, "dtype"},
      {[](CacheConfig& c) { c.head_dim = 100; }, "head_dim"},
      {[](CacheConfig& c) { c.head_dim = 512; }, "head_dim"},
      {[](CacheConfig& c) { c.codes.bits = 4; }, "bits"},
      {[](CacheConfig& c) { c.store_codes = false; }, "store_codes"},
      {[](CacheConfig& c) { c.num_pages = 0; }, "num_pages"},
      {[](CacheConfig& c) { c.page_size = 0; }, "page_size"},
      {[](CacheConfig& c) {
         c.codes.thresholds = {1.0f, 0.0f, 2.0f};
       },
       "ascending"},
  };
  for (const auto& [mutate, field] : cases) {
    CacheConfig c = good_config();
    mutate(c);
    EXPECT_ADAMAS_ERROR(cuda::DeviceKVCache{c}, HasSubstr(field));
  }
}

// A full pool throws and leaves the sequence (length, pages) and the free list as they were;
// what still fits can be appended afterwards.
TEST_F(CudaErrors, AppendBeyondThePoolLeavesTheSequenceUnchanged) {
  CacheConfig c = good_config();
  c.num_pages = 4;  // 64 tokens per layer-shared page table
  TwinCache tc(c, DType::kF32, 1);
  const int a = tc.add_sequence(), b = tc.add_sequence();
  tc.append(0, a, 40);  // 3 pages
  tc.append(0, b, 10);  // 1 page: the pool is full
  ASSERT_EQ(tc.gpu->free_pages(), 0);
  const SeqId ga = tc.gpu_seqs[a], gb = tc.gpu_seqs[b];
  const auto pages_a =
      std::vector<int32_t>(tc.gpu->page_table(ga).begin(), tc.gpu->page_table(ga).end());
  const auto pages_b =
      std::vector<int32_t>(tc.gpu->page_table(gb).begin(), tc.gpu->page_table(gb).end());
  std::vector<float> host(size_t(64) * c.num_kv_heads * c.head_dim, 0.5f);  // room for 64 tokens
  auto kv = to_device(host);
  auto same = [&] {
    EXPECT_EQ(tc.gpu->length(0, ga), 40);
    EXPECT_EQ(tc.gpu->length(0, gb), 10);
    EXPECT_EQ(tc.gpu->length(1, ga), 0);
    EXPECT_EQ(tc.gpu->free_pages(), 0);
    EXPECT_EQ(std::vector<int32_t>(tc.gpu->page_table(ga).begin(), tc.gpu->page_table(ga).end()),
              pages_a);
    EXPECT_EQ(std::vector<int32_t>(tc.gpu->page_table(gb).begin(), tc.gpu->page_table(gb).end()),
              pages_b);
  };
  const auto full = AnyOf(HasSubstr("full"), HasSubstr("free"));
  EXPECT_ADAMAS_ERROR(tc.gpu->append(0, ga, kv.data(), kv.data(), DType::kF32, 9), full);
  same();
  EXPECT_ADAMAS_ERROR(tc.gpu->append(0, gb, kv.data(), kv.data(), DType::kF32, 7), full);
  same();
  // Layer 1 shares the page table: its 3 pages hold 48 tokens of layer 1 too, 49 need a fourth.
  EXPECT_ADAMAS_ERROR(tc.gpu->append(1, ga, kv.data(), kv.data(), DType::kF32, 49), full);
  EXPECT_ADAMAS_ERROR(tc.gpu->append(1, gb, kv.data(), kv.data(), DType::kF32, 17), full);
  same();
  // A decode step over both after filling a to 48 tokens: b fits (10 → 11) but a needs a new
  // page, so the whole step must fail without changing either sequence.
  tc.append(0, a, 8);  // a: 48 tokens, its 3 pages full
  const std::vector<SeqId> both = {ga, gb};
  EXPECT_ADAMAS_ERROR(tc.gpu->append_batch(0, both, kv.data(), kv.data(), DType::kF32), full);
  EXPECT_EQ(tc.gpu->length(0, ga), 48);
  EXPECT_EQ(tc.gpu->length(0, gb), 10) << "a failed append_batch changed another sequence";
  EXPECT_EQ(tc.gpu->free_pages(), 0);
  // What fits still works, and the cache contents still match the CPU's.
  tc.append(0, b, 6);
  tc.append(1, a, 48);
  EXPECT_EQ(tc.gpu->length(0, gb), 16);
  EXPECT_EQ(tc.gpu->length(1, ga), 48);
}

TEST_F(CudaErrors, UnknownLayersSequencesAndHeads) {
  cuda::DeviceKVCache cache(good_config());
  const SeqId s = cache.add_sequence();
  std::vector<float> host(size_t(2) * 64, 0.0f);
  auto kv = to_device(host);
  EXPECT_ADAMAS_ERROR(cache.append(2, s, kv.data(), kv.data(), DType::kF32, 1), HasSubstr("layer"));
  EXPECT_ADAMAS_ERROR(cache.append(-1, s, kv.data(), kv.data(), DType::kF32, 1),
                      HasSubstr("layer"));
  EXPECT_ADAMAS_ERROR(cache.length(0, s + 5), HasSubstr("sequence"));
  EXPECT_ADAMAS_ERROR(cache.page_table(-1), HasSubstr("sequence"));
  EXPECT_ADAMAS_ERROR(cache.layer(2), HasSubstr("layer"));
  EXPECT_ADAMAS_ERROR(cache.append(0, s, nullptr, kv.data(), DType::kF32, 1), HasSubstr("null"));
  EXPECT_ADAMAS_ERROR(cache.set_thresholds(0, 2, std::vector<float>{-1.f, 0.f, 1.f}),
                      HasSubstr("kv_head"));
  EXPECT_ADAMAS_ERROR(cache.set_thresholds(0, 0, std::vector<float>{-1.f, 1.f}),
                      HasSubstr("threshold"));
  EXPECT_ADAMAS_ERROR(cache.set_thresholds(0, 0, std::vector<float>{0.f, 0.f, 1.f}),
                      HasSubstr("ascending"));
  EXPECT_ADAMAS_ERROR(cache.thresholds(0, -1), HasSubstr("kv_head"));
  cache.append(0, s, kv.data(), kv.data(), DType::kF32, 1);
  cache.remove_sequence(s);
  EXPECT_ADAMAS_ERROR(cache.length(0, s), HasSubstr("sequence"));
  EXPECT_ADAMAS_ERROR(cache.append(0, s, kv.data(), kv.data(), DType::kF32, 1),
                      HasSubstr("sequence"));
  EXPECT_ADAMAS_ERROR(cache.remove_sequence(s), HasSubstr("sequence"));
  const SeqId t = cache.add_sequence();
  const std::vector<SeqId> ids = {t};
  // A sequence with no tokens in the layer cannot be decoded.
  EXPECT_ADAMAS_ERROR(cache.batch(0, ids), HasSubstr("sequence"));
}

// A valid layer + batch + arguments for every kernel; each check below breaks one thing.
struct KernelArgs {
  TestLayer t;
  int nqh = 8;  // 4 per KV head
  DeviceBuffer<QueryCode> qcodes;
  DeviceBuffer<float> q, out;
  DeviceBuffer<uint16_t> dist;
  DeviceBuffer<uint32_t> hist, scratch;
  DeviceBuffer<int32_t> idx, counts, slots;
  cuda::AttentionWorkspace ws;
  size_t stride = 0;

  KernelArgs() {
    LayerShape shape;
    shape.kv_heads = 2;
    shape.head_dim = 64;
    shape.page_size = 16;
    shape.bits = 3;
    t = make_test_layer(shape, {100, 40}, 7);
    stride = 128;
    const std::vector<uint8_t> zero(64, 0);
    qcodes = to_device(std::vector<QueryCode>(2 * nqh, thermometer_query(zero.data(), 3, 64)));
    q.resize(2 * nqh * 64);
    q.fill_bytes(0);
    out.resize(2 * nqh * 64);
    dist.resize(2 * nqh * stride);
    hist.resize(2 * nqh * 4096);
    hist.fill_bytes(0);
    scratch.resize(std::max<size_t>(cuda::select_scratch_words(2 * nqh, 100), 1));
    idx.resize(2 * nqh * stride);
    idx.fill_bytes(0);
    counts.resize(2 * nqh);
    upload_array(counts.data(), std::vector<int32_t>(2 * nqh, 1));
    slots.resize(4);
    upload_array(slots.data(), std::vector<int32_t>{0, 1, 2, 3});
  }
  cuda::EstimateArgs estimate_args() {
    cuda::EstimateArgs a;
    a.q = qcodes.data();
    a.num_q_heads = nqh;
    a.out = dist.data();
    a.out_stride = stride;
    a.histogram = hist.data();
    return a;
  }
  cuda::TopKArgs topk_args() {
    cuda::TopKArgs a;
    a.values = dist.data();
    a.value_stride = stride;
    a.histogram = hist.data();
    a.histogram_size = 4096;
    a.lengths = t.lengths_dev.data();
    a.rows_per_seq = nqh;
    a.rows = 2 * nqh;
    a.max_length = 100;
    a.budget = 16;
    a.add_current = true;
    a.out = idx.data();
    a.out_stride = stride;
    a.counts = counts.data();
    return a;
  }
  cuda::SparseArgs sparse_args() {
    cuda::SparseArgs a;
    a.indices = idx.data();
    a.index_stride = stride;
    a.counts = counts.data();
    a.max_count = 1;
    return a;
  }
};

TEST_F(CudaErrors, QueryHeadsMustBeAMultipleOfKvHeads) {
  KernelArgs s;
  const cuda::DeviceLayer L = s.t.layer();
  const cuda::DeviceBatch B = s.t.batch();
  for (int bad : {7, 3, 0, -2}) {
    SCOPED_TRACE("num_q_heads " + std::to_string(bad));
    EXPECT_ADAMAS_ERROR(cuda::encode_queries(L, s.q.data(), 2, bad, s.qcodes.data(), nullptr),
                        HasSubstr("num_q_heads"));
    auto e = s.estimate_args();
    e.num_q_heads = bad;
    EXPECT_ADAMAS_ERROR(cuda::estimate_distances(L, B, e, nullptr), HasSubstr("num_q_heads"));
    EXPECT_ADAMAS_ERROR(
        cuda::dense_decode_attention(L, B, s.q.data(), bad, 0.125f, s.out.data(), s.ws, nullptr),
        HasSubstr("num_q_heads"));
    EXPECT_ADAMAS_ERROR(cuda::sparse_decode_attention(L, B, s.q.data(), bad, s.sparse_args(),
                                                      0.125f, s.out.data(), s.ws, nullptr),
                        HasSubstr("num_q_heads"));
    cuda::SparseDecoder dec(bad);
    EXPECT_ADAMAS_ERROR(dec.run(L, B, s.q.data(), adamas_policy(L), 0.125f, s.out.data(), nullptr),
                        HasSubstr("num_q_heads"));
    EXPECT_ADAMAS_ERROR(dec.run_dense(L, B, s.q.data(), 0.125f, s.out.data(), nullptr),
                        HasSubstr("num_q_heads"));
  }
}

TEST_F(CudaErrors, NullPointers) {
  KernelArgs s;
  const cuda::DeviceLayer L = s.t.layer();
  const cuda::DeviceBatch B = s.t.batch();
  const auto null = HasSubstr("null");
  // append / encode
  EXPECT_ADAMAS_ERROR(cuda::append_kv(L, nullptr, 4, s.q.data(), s.q.data(), DType::kF32, nullptr),
                      null);
  EXPECT_ADAMAS_ERROR(
      cuda::append_kv(L, s.slots.data(), 4, nullptr, s.q.data(), DType::kF32, nullptr), null);
  EXPECT_ADAMAS_ERROR(
      cuda::append_kv(L, s.slots.data(), 4, s.q.data(), nullptr, DType::kF32, nullptr), null);
  EXPECT_ADAMAS_ERROR(cuda::encode_stored_keys(L, nullptr, 4, nullptr), null);
  EXPECT_ADAMAS_ERROR(cuda::encode_queries(L, nullptr, 2, s.nqh, s.qcodes.data(), nullptr), null);
  EXPECT_ADAMAS_ERROR(cuda::encode_queries(L, s.q.data(), 2, s.nqh, nullptr, nullptr), null);
  // estimate
  {
    auto e = s.estimate_args();
    e.q = nullptr;
    EXPECT_ADAMAS_ERROR(cuda::estimate_distances(L, B, e, nullptr), null);
    e = s.estimate_args();
    e.queries = s.q.data();  // codes and raw queries both set
    EXPECT_ADAMAS_ERROR(cuda::estimate_distances(L, B, e, nullptr), HasSubstr("both"));
    e = s.estimate_args();
    e.out = nullptr;
    EXPECT_ADAMAS_ERROR(cuda::estimate_distances(L, B, e, nullptr), null);
  }
  // top-k
  {
    auto a = s.topk_args();
    a.values = nullptr;
    EXPECT_ADAMAS_ERROR(cuda::select_smallest(a, s.scratch.data(), nullptr), null);
    a = s.topk_args();
    a.histogram = nullptr;
    EXPECT_ADAMAS_ERROR(cuda::select_smallest(a, s.scratch.data(), nullptr), null);
    a = s.topk_args();
    a.lengths = nullptr;
    EXPECT_ADAMAS_ERROR(cuda::select_smallest(a, s.scratch.data(), nullptr), null);
    a = s.topk_args();
    a.out = nullptr;
    EXPECT_ADAMAS_ERROR(cuda::select_smallest(a, s.scratch.data(), nullptr), null);
    a = s.topk_args();
    a.counts = nullptr;
    EXPECT_ADAMAS_ERROR(cuda::select_smallest(a, s.scratch.data(), nullptr), null);
    a = s.topk_args();
    EXPECT_ADAMAS_ERROR(cuda::select_smallest(a, nullptr, nullptr), null);
  }
  // attention
  EXPECT_ADAMAS_ERROR(
      cuda::dense_decode_attention(L, B, nullptr, s.nqh, 0.125f, s.out.data(), s.ws, nullptr),
      null);
  EXPECT_ADAMAS_ERROR(
      cuda::dense_decode_attention(L, B, s.q.data(), s.nqh, 0.125f, nullptr, s.ws, nullptr), null);
  {
    auto a = s.sparse_args();
    a.indices = nullptr;
    EXPECT_ADAMAS_ERROR(cuda::sparse_decode_attention(L, B, s.q.data(), s.nqh, a, 0.125f,
                                                      s.out.data(), s.ws, nullptr),
                        null);
    a = s.sparse_args();
    a.counts = nullptr;
    EXPECT_ADAMAS_ERROR(cuda::sparse_decode_attention(L, B, s.q.data(), s.nqh, a, 0.125f,
                                                      s.out.data(), s.ws, nullptr),
                        null);
  }
  // layer and batch pointers
  for (int field = 0; field < 4; ++field) {
    cuda::DeviceLayer bad = L;
    if (field == 0) bad.k_pool = nullptr;
    if (field == 1) bad.v_pool = nullptr;
    if (field == 2) bad.code_pool = nullptr;
    if (field == 3) bad.thresholds = nullptr;
    SCOPED_TRACE("layer field " + std::to_string(field));
    EXPECT_ADAMAS_ERROR(bad.validate(), null);
    if (field < 2) {
      EXPECT_ADAMAS_ERROR(cuda::dense_decode_attention(bad, B, s.q.data(), s.nqh, 0.125f,
                                                       s.out.data(), s.ws, nullptr),
                          null);
    } else {  // attention reads no codes
      EXPECT_NO_THROW(cuda::dense_decode_attention(bad, B, s.q.data(), s.nqh, 0.125f, s.out.data(),
                                                   s.ws, nullptr));
    }
    EXPECT_ADAMAS_ERROR(cuda::estimate_distances(bad, B, s.estimate_args(), nullptr), null);
  }
  for (int field = 0; field < 3; ++field) {
    cuda::DeviceBatch bad = B;
    if (field == 0) bad.page_indptr = nullptr;
    if (field == 1) bad.page_indices = nullptr;
    if (field == 2) bad.lengths = nullptr;
    SCOPED_TRACE("batch field " + std::to_string(field));
    EXPECT_ADAMAS_ERROR(bad.validate(), null);
    EXPECT_ADAMAS_ERROR(cuda::dense_decode_attention(L, bad, s.q.data(), s.nqh, 0.125f,
                                                     s.out.data(), s.ws, nullptr),
                        null);
    EXPECT_ADAMAS_ERROR(cuda::estimate_distances(L, bad, s.estimate_args(), nullptr), null);
  }
}

TEST_F(CudaErrors, StridesAndBudgets) {
  KernelArgs s;
  const cuda::DeviceLayer L = s.t.layer();
  const cuda::DeviceBatch B = s.t.batch();
  {
    auto e = s.estimate_args();
    e.out_stride = 99;  // < max_length 100
    EXPECT_ADAMAS_ERROR(cuda::estimate_distances(L, B, e, nullptr), HasSubstr("out_stride"));
  }
  {
    auto a = s.topk_args();
    a.out_stride = 15;  // < budget 16
    EXPECT_ADAMAS_ERROR(cuda::select_smallest(a, s.scratch.data(), nullptr),
                        HasSubstr("out_stride"));
    a = s.topk_args();
    a.value_stride = 99;  // < max_length 100
    EXPECT_ADAMAS_ERROR(cuda::select_smallest(a, s.scratch.data(), nullptr),
                        HasSubstr("value_stride"));
    a = s.topk_args();
    a.budget = -1;
    a.add_current = false;
    EXPECT_ADAMAS_ERROR(cuda::select_smallest(a, s.scratch.data(), nullptr), HasSubstr("budget"));
    a = s.topk_args();
    a.budget = 0;  // k = −1 with add_current
    EXPECT_ADAMAS_ERROR(cuda::select_smallest(a, s.scratch.data(), nullptr), HasSubstr("budget"));
  }
  {
    auto a = s.sparse_args();
    a.max_count = 200;
    a.index_stride = 128;  // cannot hold max_count entries
    EXPECT_ADAMAS_ERROR(cuda::sparse_decode_attention(L, B, s.q.data(), s.nqh, a, 0.125f,
                                                      s.out.data(), s.ws, nullptr),
                        HasSubstr("index_stride"));
  }
  {
    cuda::SparseDecoder dec(s.nqh);
    PolicyConfig p = adamas_policy(L);
    p.budget = 0;
    EXPECT_ADAMAS_ERROR(dec.run(L, B, s.q.data(), p, 0.125f, s.out.data(), nullptr),
                        HasSubstr("budget"));
    EXPECT_ADAMAS_ERROR(dec.plan(L, 2, 100, p), HasSubstr("budget"));
  }
  {
    // A batch wider than a grid dimension.
    cuda::DeviceBatch bad = B;
    bad.batch = 65536;
    EXPECT_ADAMAS_ERROR(cuda::dense_decode_attention(L, bad, s.q.data(), s.nqh, 0.125f,
                                                     s.out.data(), s.ws, nullptr),
                        AllOf(HasSubstr("batch"), HasSubstr("65536")));
  }
}

// SparseDecoder runs adamas policies whose codes are the cache's; plan() checks its bounds.
TEST_F(CudaErrors, DecoderPolicyAndPlan) {
  KernelArgs s;
  const cuda::DeviceLayer L = s.t.layer();  // 3-bit codes, Hadamard
  const cuda::DeviceBatch B = s.t.batch();
  cuda::SparseDecoder dec(s.nqh);
  for (PolicyKind kind :
       {PolicyKind::kFull, PolicyKind::kOracle, PolicyKind::kQuest, PolicyKind::kStreaming}) {
    PolicyConfig p = adamas_policy(L);
    p.kind = kind;
    SCOPED_TRACE(p.describe());
    EXPECT_ADAMAS_ERROR(dec.run(L, B, s.q.data(), p, 0.125f, s.out.data(), nullptr),
                        AllOf(HasSubstr("adamas"), HasSubstr(std::string(policy_kind_name(kind)))));
    EXPECT_ADAMAS_ERROR(dec.plan(L, 2, 100, p), HasSubstr("adamas"));
  }
  PolicyConfig p = adamas_policy(L);
  p.bits = 2;
  EXPECT_ADAMAS_ERROR(dec.run(L, B, s.q.data(), p, 0.125f, s.out.data(), nullptr),
                      AllOf(HasSubstr("2-bit"), HasSubstr("3-bit")));
  EXPECT_ADAMAS_ERROR(dec.plan(L, 2, 100, p), HasSubstr("2-bit"));
  p = adamas_policy(L);
  p.hadamard = false;
  EXPECT_ADAMAS_ERROR(dec.run(L, B, s.q.data(), p, 0.125f, s.out.data(), nullptr),
                      HasSubstr("Hadamard"));
  p = adamas_policy(L);
  EXPECT_ADAMAS_ERROR(dec.plan(L, 0, 100, p), AllOf(HasSubstr("max_batch"), HasSubstr("got 0")));
  EXPECT_ADAMAS_ERROR(dec.plan(L, 65536, 100, p), HasSubstr("max_batch"));
  EXPECT_ADAMAS_ERROR(dec.plan(L, 2, 0, p), AllOf(HasSubstr("max_length"), HasSubstr("got 0")));
  cuda::SparseDecoder odd(7);
  EXPECT_ADAMAS_ERROR(odd.plan(L, 2, 100, p), HasSubstr("num_q_heads"));
  // Nothing was planned by the failed calls; a good plan and run still work.
  EXPECT_NO_THROW(dec.plan(L, 2, 100, p));
  EXPECT_NO_THROW(dec.run(L, B, s.q.data(), p, 0.125f, s.out.data(), nullptr));
  device_sync();
}

// Distances whose largest value does not fit 16 bits (3-bit L2 codes of d = 256 summed over 8
// heads: 49 · 256 · 8 = 100352) are refused; per head (12544) they fit.
TEST_F(CudaErrors, DistancesThatOverflowSixteenBits) {
  LayerShape shape;
  shape.kv_heads = 1;
  shape.head_dim = 256;
  shape.bits = 3;
  LayerContent content;
  content.kv = false;
  TestLayer t = make_test_layer(shape, {10}, 3, content);
  const std::vector<uint8_t> zero(256, 0);
  auto q = to_device(std::vector<QueryCode>(8, thermometer_query(zero.data(), 3, 256)));
  DeviceBuffer<uint16_t> out(8 * 16);  // per head: 8 rows of out_stride 16
  cuda::EstimateArgs a;
  a.q = q.data();
  a.num_q_heads = 8;
  a.distance = Distance::kL2;
  a.sum_heads = true;
  a.out = out.data();
  a.out_stride = 16;
  EXPECT_ADAMAS_ERROR(cuda::estimate_distances(t.layer(), t.batch(), a, nullptr),
                      HasSubstr("16 bits"));
  a.sum_heads = false;
  EXPECT_NO_THROW(cuda::estimate_distances(t.layer(), t.batch(), a, nullptr));
  device_sync();
}

TEST_F(CudaErrors, BadLayerAndBatchFields) {
  KernelArgs s;
  const cuda::DeviceLayer L = s.t.layer();
  const cuda::DeviceBatch B = s.t.batch();
  auto dense = [&](const cuda::DeviceLayer& l, const cuda::DeviceBatch& b) {
    cuda::dense_decode_attention(l, b, s.q.data(), s.nqh, 0.125f, s.out.data(), s.ws, nullptr);
  };
  {
    cuda::DeviceLayer bad = L;
    bad.head_dim = 100;
    EXPECT_ADAMAS_ERROR(dense(bad, B), HasSubstr("head_dim"));
    bad.head_dim = 8;
    EXPECT_ADAMAS_ERROR(bad.validate(), HasSubstr("head_dim"));
  }
  {
    cuda::DeviceLayer bad = L;
    bad.dtype = DType::kF32;
    EXPECT_ADAMAS_ERROR(dense(bad, B), HasSubstr("dtype"));
  }
  {
    cuda::DeviceLayer bad = L;
    bad.bits = 4;
    EXPECT_ADAMAS_ERROR(bad.validate(), HasSubstr("bits"));
    bad.bits = 0;
    EXPECT_ADAMAS_ERROR(cuda::estimate_distances(bad, B, s.estimate_args(), nullptr),
                        HasSubstr("bits"));
  }
  {
    cuda::DeviceLayer bad = L;
    bad.page_size = 0;
    EXPECT_ADAMAS_ERROR(bad.validate(), HasSubstr("page_size"));
  }
  {
    cuda::DeviceBatch bad = B;
    bad.batch = 0;
    EXPECT_ADAMAS_ERROR(dense(L, bad), HasSubstr("batch"));
  }
  {
    cuda::DeviceBatch bad = B;
    bad.max_length = 0;
    EXPECT_ADAMAS_ERROR(bad.validate(), HasSubstr("max_length"));
  }
  // After all of that the valid call still works.
  EXPECT_NO_THROW(dense(L, B));
  device_sync();
}

}  // namespace
}  // namespace adamas::test
