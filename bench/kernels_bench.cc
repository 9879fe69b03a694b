// Micro-benchmarks of the CPU kernels, one head at a time, data resident in a paged cache.
// Whole decode steps, per stage and against dense attention, are timed by `adamas bench`.
#include <benchmark/benchmark.h>
#include <omp.h>

#include <random>
#include <vector>

#include "adamas/cache/paged_kv_cache.h"
#include "adamas/core/attention.h"
#include "adamas/core/estimate.h"
#include "adamas/core/hadamard.h"
#include "adamas/core/matvec.h"
#include "adamas/core/topk.h"

namespace adamas {
namespace {

struct OneHead {  // a single sequence of `length` tokens, one KV head, d = 128, f16
  explicit OneHead(int length) {
    CacheConfig c;
    c.num_kv_heads = 1;
    c.head_dim = 128;
    c.page_size = 64;
    c.num_pages = c.pages_for(length);
    cache = std::make_unique<PagedKVCache>(c);
    seq = cache->add_sequence();
    std::mt19937 rng(7);
    std::normal_distribution<float> normal(0.f, 10.f);
    std::vector<float> k(size_t(length) * 128), v(k.size());
    for (float& x : k) x = normal(rng);
    for (float& x : v) x = normal(rng);
    cache->append(0, seq, k.data(), v.data(), length);
    q.resize(128);
    for (float& x : q) x = normal(rng) / 10.f;
  }
  std::unique_ptr<PagedKVCache> cache;
  SeqId seq;
  std::vector<float> q;
};

void BM_Hadamard(benchmark::State& state) {
  const int d = static_cast<int>(state.range(0));
  std::vector<float> x(size_t(1024) * d, 1.0f);
  for (auto _ : state) {
    hadamard_transform(x.data(), 1024, d);
    benchmark::DoNotOptimize(x.data());
  }
  state.SetItemsProcessed(state.iterations() * 1024);
}
BENCHMARK(BM_Hadamard)->Arg(64)->Arg(128)->Arg(256);

void BM_Estimate(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  OneHead head(n);
  const CodeSpec& spec = head.cache->config().codes;
  const QueryCode qc = encode_query(spec, head.cache->thresholds(0, 0), head.q.data());
  std::vector<uint16_t> out(n);
  std::vector<uint32_t> hist(histogram_size(spec, Distance::kL1, 1, false));
  for (auto _ : state) {
    std::fill(hist.begin(), hist.end(), 0);
    estimate_distances(spec, Distance::kL1, &qc, 1, head.cache->codes(0, head.seq, 0), false,
                       out.data(), n, state.range(1) ? hist.data() : nullptr);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(state.iterations() * n * spec.key_code_bytes());
}
BENCHMARK(BM_Estimate)
    ->Args({4096, 1})
    ->Args({4096, 0})
    ->Args({32768, 1})
    ->Args({131072, 1})
    ->Args({131072, 0});

void BM_SelectSmallest(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0)), k = static_cast<int>(state.range(1));
  std::mt19937 rng(3);
  std::normal_distribution<float> normal(192.f, 20.f);  // like 2-bit L1 distances at d = 128
  std::vector<uint16_t> v(n);
  for (auto& x : v) x = static_cast<uint16_t>(std::clamp(normal(rng), 0.f, 384.f));
  std::vector<int32_t> out(k);
  for (auto _ : state) benchmark::DoNotOptimize(select_smallest(v.data(), n, k, out.data()));
  state.SetItemsProcessed(state.iterations() * n);
}
BENCHMARK(BM_SelectSmallest)->Args({32768, 256})->Args({131072, 256})->Args({131072, 4096});

void BM_DenseAttention(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  OneHead head(n);
  std::vector<float> out(128);
  const PagedKV kv = head.cache->kv(0, head.seq, 0);
  for (auto _ : state) {
    dense_decode_attention(head.q.data(), 1, kv, 0.088f, out.data());
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(state.iterations() * n * 128 * 2 * 2);
}
BENCHMARK(BM_DenseAttention)->Arg(4096)->Arg(32768)->Arg(131072);

void BM_SparseAttention(benchmark::State& state) {
  const int n = 131072, budget = static_cast<int>(state.range(0));
  OneHead head(n);
  std::vector<int32_t> idx(budget);
  for (int i = 0; i < budget; ++i) idx[i] = static_cast<int32_t>(int64_t{i} * n / budget);
  std::vector<float> out(128);
  const PagedKV kv = head.cache->kv(0, head.seq, 0);
  for (auto _ : state) {
    sparse_decode_attention(head.q.data(), 1, kv, idx.data(), budget, 0.088f, out.data());
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(state.iterations() * budget);
}
BENCHMARK(BM_SparseAttention)->Arg(64)->Arg(256)->Arg(4096);

// A decode step's product: n rows times an MLP-sized bf16 matrix (14336 × 4096, 117 MB, larger than
// the caches), rows split over the OpenMP threads as model::linear does. Bytes/s counts the
// weights read: compare with the read-only bandwidth `adamas bench` prints.
void BM_MatvecBf16(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0)), rows = 14336, cols = 4096;
  std::mt19937 rng(3);
  std::normal_distribution<float> normal;
  std::vector<float> w(size_t(rows) * cols), x(size_t(n) * cols), y(size_t(n) * rows);
  for (float& v : w) v = normal(rng);
  for (float& v : x) v = normal(rng);
  std::vector<uint16_t> wb(w.size());
  convert_from_f32(w.data(), wb.data(), DType::kBF16, w.size());
  const int threads = omp_get_max_threads(), block = 256;
  for (auto _ : state) {
#pragma omp parallel for num_threads(threads) schedule(dynamic)
    for (int r0 = 0; r0 < rows; r0 += block)
      matvec(x.data(), n, cols, wb.data(), DType::kBF16, r0, std::min(rows, r0 + block), y.data(),
             rows);
    benchmark::DoNotOptimize(y.data());
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * rows * cols * 2);
}
BENCHMARK(BM_MatvecBf16)->Arg(1)->Arg(2)->Arg(4)->Arg(8)->Arg(16)->UseRealTime();

}  // namespace
}  // namespace adamas
