// decode.h SparseDecoder end to end vs the CPU DecodeAttention with the adamas policy, on caches
// filled identically on the CPU and the GPU (TwinCache, per-head random thresholds): the selected
// positions of every row equal the CPU scratch exactly (ascending; every position where the CPU
// attends densely because budget ≥ length), counts too, and the outputs agree within the attention
// tolerance. Per-head and group-shared GQA, groups 1, 2, 3, 4, 8, bits 1/2/3, L1/L2, Hadamard
// on/off, f16/bf16, budgets 1, 16, 64 and ≥ every length, a ragged batch, decode steps in between
// (append_batch, then run again with the same decoder). run_dense vs the CPU `full` policy.
#include "adamas/core/estimate.h"
#include "adamas/decode/decode_attention.h"
#include "adamas/policy/policy.h"
#include "cuda_test_util.h"

namespace adamas::test {
namespace {

class CudaDecode : public CudaTest {};

struct DecodeCase {
  int d, page, kv_heads, group, bits;
  Distance dist;
  bool hadamard;
  DType dtype;
  bool shared;
  int layers = 1;
  std::string name() const {
    return "d " + std::to_string(d) + " page " + std::to_string(page) + " kv heads " +
           std::to_string(kv_heads) + " group " + std::to_string(group) + " bits " +
           std::to_string(bits) + (dist == Distance::kL1 ? " L1" : " L2") +
           (hadamard ? " hadamard " : " no-hadamard ") + dtype_str(dtype) +
           (shared ? " shared" : " per-head") + " layers " + std::to_string(layers);
  }
  int num_q_heads() const { return kv_heads * group; }
};

std::string policy_spec(const DecodeCase& c, int budget) {
  return "adamas:budget=" + std::to_string(budget) +
         ",dense_layers=0,gqa=" + (c.shared ? "shared" : "per-head") +
         ",bits=" + std::to_string(c.bits) + ",dist=" + (c.dist == Distance::kL1 ? "l1" : "l2") +
         ",hadamard=" + (c.hadamard ? "1" : "0");
}

// Both caches configured for the adamas policy, per-head random thresholds, filled with a ragged
// batch in every layer; room for `extra` more tokens per sequence.
std::unique_ptr<TwinCache> make_twin(const DecodeCase& c, const std::vector<int>& lengths,
                                     int extra, uint64_t seed, int max_chunk = 61) {
  CacheConfig cfg;
  cfg.num_layers = c.layers;
  cfg.num_kv_heads = c.kv_heads;
  cfg.head_dim = c.d;
  cfg.page_size = c.page;
  cfg.dtype = c.dtype;
  configure_cache_for(parse_policy(policy_spec(c, 16)), cfg);
  std::vector<int> room;
  for (int len : lengths) room.push_back(len + extra);
  cfg.num_pages = pages_needed(cfg, room, 2);
  auto tc =
      std::make_unique<TwinCache>(cfg, c.dtype == DType::kF16 ? DType::kF32 : DType::kBF16, seed);
  FastRng r(seed + 1);
  for (int l = 0; l < c.layers; ++l)
    for (int h = 0; h < c.kv_heads; ++h)
      tc->set_thresholds(l, h, random_thresholds(r, c.bits, (h + l) % 2 == 0));
  std::vector<int> seqs;
  for (size_t s = 0; s < lengths.size(); ++s) seqs.push_back(tc->add_sequence());
  for (int l = 0; l < c.layers; ++l) tc->fill(l, seqs, lengths, max_chunk);
  return tc;
}

std::vector<int> all_sequences(const TwinCache& tc) {
  std::vector<int> s;
  for (size_t i = 0; i < tc.cpu_seqs.size(); ++i) s.push_back(static_cast<int>(i));
  return s;
}

// One decode step of `layer` on both sides; compares selections and outputs.
void compare_step(TwinCache& tc, const DecodeCase& c, int layer, int budget,
                  cuda::SparseDecoder& dec, uint64_t seed) {
  SCOPED_TRACE(c.name() + " layer " + std::to_string(layer) + " budget " + std::to_string(budget));
  const std::vector<int> seqs = all_sequences(tc);
  const int H = c.kv_heads, g = c.group, nqh = c.num_q_heads(), B = static_cast<int>(seqs.size());
  const int d = c.d;
  FastRng r(seed);
  const auto q = fast_normal(r, size_t(B) * nqh * d, 1.0f);

  // CPU.
  const PolicyConfig pc = parse_policy(policy_spec(c, budget));
  const auto policy = make_policy(pc);
  DecodeAttention da(*tc.cpu, *policy, nqh);
  std::vector<float> want(q.size(), NAN);
  const auto cpu_ids = tc.cpu_ids(seqs);
  da.run(layer, cpu_ids, q.data(), want.data());

  // GPU.
  auto q_dev = to_device(q);
  DeviceBuffer<float> out(q.size());
  out.fill_bytes(0xff);
  const auto gpu_ids = tc.gpu_ids(seqs);
  const cuda::DeviceLayer L = tc.gpu->layer(layer);
  const cuda::DeviceBatch batch = tc.gpu->batch(layer, gpu_ids);
  dec.set_topk_path(cuda::SparseDecoder::TopKPath::kIndices);  // the selection is checked in memory
  dec.run(L, batch, q_dev.data(), pc, 1.0f / std::sqrt(float(d)), out.data(), nullptr);
  const auto got = download_array(out.data(), q.size());
  // The fast path: selection fused into the attention kernel, no index array.
  DeviceBuffer<float> fused_out(q.size());
  fused_out.fill_bytes(0xff);
  dec.set_topk_path(cuda::SparseDecoder::TopKPath::kFused);
  dec.run(L, batch, q_dev.data(), pc, 1.0f / std::sqrt(float(d)), fused_out.data(), nullptr);
  const auto got_fused = download_array(fused_out.data(), q.size());
  const int rows = B * (c.shared ? H : nqh);
  const size_t stride = dec.index_stride();
  const auto counts = download_array(dec.counts(), rows);
  const auto indices = download_array(dec.indices(), size_t(rows) * stride);

  for (int b = 0; b < B; ++b) {
    const int len = tc.cpu->length(layer, cpu_ids[b]);
    for (int h = 0; h < H; ++h) {
      const HeadScratch& s = da.scratch(b, h);
      ASSERT_EQ(s.dense, budget >= len);
      for (int j = 0; j < g; ++j) {
        const int qh = h * g + j;
        SCOPED_TRACE("sequence " + std::to_string(b) + " (length " + std::to_string(len) +
                     ") q head " + std::to_string(qh));
        std::vector<int32_t> want_idx;
        if (s.dense) {
          want_idx = iota_positions(len);
        } else {
          const int r0 = s.shared ? 0 : j;
          const int32_t* p = s.row(r0, budget);
          want_idx.assign(p, p + s.counts[r0]);
        }
        const int row = c.shared ? b * H + h : b * nqh + qh;
        ASSERT_EQ(counts[row], static_cast<int32_t>(want_idx.size())) << "counts of row " << row;
        ASSERT_LE(static_cast<size_t>(counts[row]), stride);
        const std::vector<int32_t> got_idx(indices.begin() + size_t(row) * stride,
                                           indices.begin() + size_t(row) * stride + counts[row]);
        ASSERT_EQ(got_idx, want_idx) << "selection of row " << row;
        const size_t at = (size_t(b) * nqh + qh) * d;
        EXPECT_TRUE(attention_close(got.data() + at, want.data() + at, d)) << "output";
        EXPECT_TRUE(attention_close(got_fused.data() + at, want.data() + at, d)) << "fused output";
      }
    }
  }
}

const DecodeCase kCases[] = {
    {128, 16, 2, 4, 2, Distance::kL1, true, DType::kF16, false},
    {128, 16, 2, 4, 2, Distance::kL1, true, DType::kF16, true},
    {64, 5, 1, 1, 1, Distance::kL2, false, DType::kBF16, false, 2},
    {64, 64, 2, 3, 3, Distance::kL2, true, DType::kBF16, true},
    {256, 8, 1, 8, 2, Distance::kL2, true, DType::kF16, true, 2},
    {32, 13, 4, 2, 3, Distance::kL1, false, DType::kF16, false},
    {16, 64, 2, 8, 3, Distance::kL1, true, DType::kBF16, false},
    {128, 32, 2, 8, 3, Distance::kL2, true, DType::kF16, true},
    {256, 16, 2, 2, 1, Distance::kL1, false, DType::kBF16, true},
    {64, 1, 2, 3, 2, Distance::kL1, true, DType::kF16, false},
};

// Budgets 1, 16, 64 and 2000 (≥ every length) over a ragged batch (lengths around the budgets),
// then three decode steps (one appended token per sequence, one launch) with the same decoder.
TEST_F(CudaDecode, MatchesCpuDecodeAttention) {
  int index = 0;
  for (const DecodeCase& c : kCases) {
    ++index;
    const std::vector<int> lengths = {1, 15, 17, 64, 300, 1000};
    auto tc = make_twin(c, lengths, 4, 100 + index);
    const int layer = c.layers - 1;
    cuda::SparseDecoder dec(c.num_q_heads());
    for (int step = 0; step < 3; ++step) {
      for (int budget : {1, 16, 64, 2000}) {  // 2000 ≥ every length
        compare_step(*tc, c, layer, budget, dec, 1000 * index + 10 * step + budget % 7);
        if (HasFatalFailure()) return;
      }
      for (int l = 0; l < c.layers; ++l) tc->append_batch(l, all_sequences(*tc));
    }
  }
}

// A decoder reused across configurations (per-head ↔ shared, L1 ↔ L2, budgets up and down):
// its kept-zero histogram and buffers must not leak state between runs.
TEST_F(CudaDecode, DecoderReusedAcrossConfigurations) {
  DecodeCase c{128, 16, 2, 4, 2, Distance::kL1, true, DType::kF16, false};
  auto tc = make_twin(c, {40, 700, 129}, 0, 300);
  cuda::SparseDecoder dec(c.num_q_heads());
  int step = 0;
  for (int budget : {64, 8, 300, 33, 1, 129})
    for (bool shared : {false, true})
      for (Distance dist : {Distance::kL1, Distance::kL2}) {
        c.shared = shared;
        c.dist = dist;
        compare_step(*tc, c, 0, budget, dec, 310 + step++);
        if (HasFatalFailure()) return;
      }
}

// run_dense == the CPU `full` policy (dense attention) within the attention tolerance.
TEST_F(CudaDecode, RunDenseMatchesCpuFullPolicy) {
  int index = 0;
  for (const DecodeCase& c : kCases) {
    ++index;
    SCOPED_TRACE(c.name());
    auto tc = make_twin(c, {1, 3, 65, 1000}, 0, 400 + index);
    const int layer = c.layers - 1, nqh = c.num_q_heads(), d = c.d;
    const std::vector<int> seqs = all_sequences(*tc);
    FastRng r(450 + index);
    const auto q = fast_normal(r, seqs.size() * nqh * d, 2.0f);
    const auto policy = make_policy(parse_policy("full"));
    DecodeAttention da(*tc->cpu, *policy, nqh);
    std::vector<float> want(q.size());
    da.run(layer, tc->cpu_ids(seqs), q.data(), want.data());
    auto q_dev = to_device(q);
    DeviceBuffer<float> out(q.size());
    out.fill_bytes(0xff);
    cuda::SparseDecoder dec(nqh);
    dec.run_dense(tc->gpu->layer(layer), tc->gpu->batch(layer, tc->gpu_ids(seqs)), q_dev.data(),
                  1.0f / std::sqrt(float(d)), out.data(), nullptr);
    const auto got = download_array(out.data(), q.size());
    for (size_t row = 0; row < seqs.size() * nqh; ++row)
      EXPECT_TRUE(attention_close(got.data() + row * d, want.data() + row * d, d)) << "row " << row;
  }
}

// With a StageTimer the run records its stage boundaries: finite, non-negative times.
TEST_F(CudaDecode, StageTimerRecordsEveryStage) {
  DecodeCase c{128, 16, 2, 4, 2, Distance::kL1, true, DType::kF16, true};
  auto tc = make_twin(c, {500, 2000}, 0, 500);
  const std::vector<int> seqs = all_sequences(*tc);
  FastRng r(501);
  const auto q = fast_normal(r, seqs.size() * c.num_q_heads() * c.d);
  auto q_dev = to_device(q);
  DeviceBuffer<float> out(q.size());
  cuda::SparseDecoder dec(c.num_q_heads());
  cuda::StageTimer timer;
  const PolicyConfig pc = parse_policy(policy_spec(c, 64));
  for (int rep = 0; rep < 2; ++rep) {
    dec.run(tc->gpu->layer(0), tc->gpu->batch(0, tc->gpu_ids(seqs)), q_dev.data(), pc,
            1.0f / std::sqrt(128.0f), out.data(), nullptr, &timer);
    const auto ms = timer.stage_ms();
    float sum = 0;
    for (float x : ms) {
      EXPECT_TRUE(std::isfinite(x));
      EXPECT_GE(x, 0.0f);
      sum += x;
    }
    const float total = timer.total_ms();
    EXPECT_TRUE(std::isfinite(total));
    EXPECT_GE(total, 0.0f);
    EXPECT_NEAR(sum, total, 0.05f + 0.01f * total);
  }
}

// Everything on a non-blocking stream (no implicit synchronization with the legacy default
// stream): a decode step's append_batch and batch() upload, the sparse run with a timer and the
// dense run, results read back by copies on that stream. A launch that ignored `stream` would race
// with those copies.
TEST_F(CudaDecode, RunsOnTheGivenStream) {
  DecodeCase c{128, 16, 2, 4, 2, Distance::kL1, true, DType::kF16, false};
  auto tc = make_twin(c, {700, 33, 1500}, 1, 700);
  cudaStream_t stream = nullptr;
  cuda::check(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "cudaStreamCreate");
  struct Destroy {
    cudaStream_t s;
    ~Destroy() { cudaStreamDestroy(s); }
  } destroy{stream};
  const std::vector<int> seqs = all_sequences(*tc);
  const int nqh = c.num_q_heads(), d = c.d, B = static_cast<int>(seqs.size());
  // The decode step's token: CPU append, GPU append_batch on the stream.
  {
    std::vector<std::byte> k, v;
    tc->make_tokens(0, B, k, v);
    const size_t row = size_t(c.kv_heads) * d * dtype_size(tc->src);
    for (int b = 0; b < B; ++b)
      tc->cpu->append(0, tc->cpu_seqs[b], k.data() + b * row, v.data() + b * row, tc->src, 1);
    auto kd = to_device(k), vd = to_device(v);
    const auto ids = tc->gpu_ids(seqs);
    tc->gpu->append_batch(0, ids, kd.data(), vd.data(), tc->src, stream);
    cuda::check(cudaStreamSynchronize(stream), "append_batch");
  }
  FastRng r(701);
  const auto q = fast_normal(r, size_t(B) * nqh * d);
  auto q_dev = to_device(q);
  DeviceBuffer<float> out(q.size()), dense_out(q.size());
  out.fill_bytes(0xff);
  dense_out.fill_bytes(0xff);
  device_sync();
  const int budget = 64;
  cuda::SparseDecoder dec(nqh);
  cuda::StageTimer timer;
  dec.set_topk_path(cuda::SparseDecoder::TopKPath::kIndices);  // counts() are read below
  const cuda::DeviceLayer L = tc->gpu->layer(0);
  const cuda::DeviceBatch batch = tc->gpu->batch(0, tc->gpu_ids(seqs), stream);
  dec.run(L, batch, q_dev.data(), parse_policy(policy_spec(c, budget)), 1.0f / std::sqrt(float(d)),
          out.data(), stream, &timer);
  dec.run_dense(L, batch, q_dev.data(), 1.0f / std::sqrt(float(d)), dense_out.data(), stream);
  std::vector<float> got(q.size()), got_dense(q.size());
  const int rows = B * nqh;
  std::vector<int32_t> counts(rows);
  cuda::check(
      cudaMemcpyAsync(got.data(), out.data(), got.size() * 4, cudaMemcpyDeviceToHost, stream),
      "copy");
  cuda::check(cudaMemcpyAsync(got_dense.data(), dense_out.data(), got.size() * 4,
                              cudaMemcpyDeviceToHost, stream),
              "copy");
  cuda::check(cudaMemcpyAsync(counts.data(), dec.counts(), counts.size() * 4,
                              cudaMemcpyDeviceToHost, stream),
              "copy");
  cuda::check(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
  EXPECT_GE(timer.total_ms(), 0.0f);

  const auto policy = make_policy(parse_policy(policy_spec(c, budget)));
  DecodeAttention da(*tc->cpu, *policy, nqh);
  std::vector<float> want(q.size());
  da.run(0, tc->cpu_ids(seqs), q.data(), want.data());
  const auto full = make_policy(parse_policy("full"));
  DecodeAttention dfull(*tc->cpu, *full, nqh);
  std::vector<float> want_dense(q.size());
  dfull.run(0, tc->cpu_ids(seqs), q.data(), want_dense.data());
  for (int b = 0; b < B; ++b)
    for (int qh = 0; qh < nqh; ++qh) {
      const int row = b * nqh + qh;
      const HeadScratch& s = da.scratch(b, qh / c.group);
      EXPECT_EQ(counts[row], s.dense ? tc->cpu->length(0, tc->cpu_seqs[b]) : s.counts[qh % c.group])
          << "row " << row;
      EXPECT_TRUE(attention_close(got.data() + size_t(row) * d, want.data() + size_t(row) * d, d))
          << "sparse row " << row;
      EXPECT_TRUE(attention_close(got_dense.data() + size_t(row) * d,
                                  want_dense.data() + size_t(row) * d, d))
          << "dense row " << row;
    }
}

// Rows longer than one top-k chunk (8192 positions): the fused kernel's blocks each select from
// their chunk with the tie counts of the chunks before; the current token lands at a chunk's
// start (8193), its end (8192) and inside (20000). Small enough for the sanitizer runs.
TEST_F(CudaDecode, SelectionSpansSeveralChunks) {
  int index = 0;
  for (bool shared : {false, true}) {
    ++index;
    DecodeCase c{64, 64, 1, 2, 2, Distance::kL1, true, DType::kF16, shared};
    auto tc = make_twin(c, {8191, 8192, 8193, 20000}, 0, 900 + index, 4096);
    cuda::SparseDecoder dec(c.num_q_heads());
    for (int budget : {1, 16, 300}) {
      compare_step(*tc, c, 0, budget, dec, 910 + index + budget);
      if (HasFatalFailure()) return;
    }
  }
}

// plan() sizes every workspace up front: afterwards steps of every batch size up to the plan
// (ragged lengths up to its max_length, smaller budgets too) on every top-k path and run_dense
// leave every workspace where it was (same addresses and sizes: no cudaMalloc) and device memory
// unchanged, and give the same bits as an unplanned decoder.
TEST_F(CudaDecode, PlannedStepsAllocateNothing) {
  using Path = cuda::SparseDecoder::TopKPath;
  int index = 0;
  for (bool shared : {false, true}) {
    ++index;
    DecodeCase c{64, 16, 2, 4, 2, Distance::kL1, true, DType::kF16, shared};
    const std::vector<int> lengths = {9000, 1, 300, 17000, 64, 8193};
    auto tc = make_twin(c, lengths, 0, 1100 + index, 4096);
    const int nqh = c.num_q_heads(), d = c.d, max_batch = static_cast<int>(lengths.size());
    const int max_length = 17000;
    const float scale = 1.0f / std::sqrt(float(d));
    const cuda::DeviceLayer L = tc->gpu->layer(0);
    const PolicyConfig planned = parse_policy(policy_spec(c, 256));
    FastRng r(1150 + index);
    auto q_dev = to_device(fast_normal(r, size_t(max_batch) * nqh * d));
    DeviceBuffer<float> out(size_t(max_batch) * nqh * d), ref(size_t(max_batch) * nqh * d);
    // Every batch of the first b sequences, in two orders, uploaded before anything is measured.
    std::vector<std::vector<SeqId>> batches;
    for (int b = 1; b <= max_batch; ++b) {
      std::vector<int> first(b);
      for (int i = 0; i < b; ++i) first[i] = i;
      batches.push_back(tc->gpu_ids(first));
      std::reverse(first.begin(), first.end());
      batches.push_back(tc->gpu_ids(first));
    }
    cuda::SparseDecoder dec(nqh), unplanned(nqh);
    dec.plan(L, max_batch, max_length, planned);
    const auto planned_ws = dec.workspaces();
    for (const auto& [ptr, bytes] : planned_ws) {
      EXPECT_NE(ptr, nullptr);
      EXPECT_GT(bytes, 0u);
    }
    for (int pass = 0; pass < 2; ++pass) {  // the second pass: device memory must not move
      device_sync();
      size_t free_before = 0, total = 0;
      cuda::check(cudaMemGetInfo(&free_before, &total), "cudaMemGetInfo");
      for (const auto& ids : batches)
        for (int budget : {256, 17, 1})
          for (Path path : {Path::kAuto, Path::kFused, Path::kIndices}) {
            SCOPED_TRACE(c.name() + " batch " + std::to_string(ids.size()) + " budget " +
                         std::to_string(budget) + " path " + std::to_string(int(path)));
            PolicyConfig p = planned;
            p.budget = budget;
            const cuda::DeviceBatch batch = tc->gpu->batch(0, ids);
            dec.set_topk_path(path);
            dec.run(L, batch, q_dev.data(), p, scale, out.data(), nullptr);
            dec.run_dense(L, batch, q_dev.data(), scale, out.data(), nullptr);
            ASSERT_EQ(dec.workspaces(), planned_ws) << "a planned step allocated";
            if (pass == 1) continue;
            // Same bits as a decoder that sized itself (and on the same path).
            const size_t n = ids.size() * nqh * d;
            out.fill_bytes(0xff);
            ref.fill_bytes(0xff);
            dec.run(L, batch, q_dev.data(), p, scale, out.data(), nullptr);
            unplanned.set_topk_path(path);
            unplanned.run(L, batch, q_dev.data(), p, scale, ref.data(), nullptr);
            const auto a = download_array(out.data(), n), b = download_array(ref.data(), n);
            ASSERT_EQ(std::memcmp(a.data(), b.data(), n * sizeof(float)), 0)
                << "planned and unplanned runs differ";
            dec.run_dense(L, batch, q_dev.data(), scale, out.data(), nullptr);
            unplanned.run_dense(L, batch, q_dev.data(), scale, ref.data(), nullptr);
            const auto da = download_array(out.data(), n), db = download_array(ref.data(), n);
            ASSERT_EQ(std::memcmp(da.data(), db.data(), n * sizeof(float)), 0)
                << "planned and unplanned dense runs differ";
          }
      device_sync();
      size_t free_after = 0;
      cuda::check(cudaMemGetInfo(&free_after, &total), "cudaMemGetInfo");
      if (pass == 1) {
        EXPECT_EQ(free_after, free_before) << "device memory changed during steps";
      }
    }
  }
}

// A decoder on a caller's workspace (use_workspace: the PyTorch ops) gives the same bits as one
// that sized itself, on every path and batch, with garbage in the workspace beforehand (the
// histogram and counters are zeroed per step); select() writes the kIndices path's rows; a
// workspace below workspace_bytes() is refused with the sizes.
TEST_F(CudaDecode, CallerWorkspaceMatchesSelfSizedDecoder) {
  using Path = cuda::SparseDecoder::TopKPath;
  for (bool shared : {false, true}) {
    DecodeCase c{128, 16, 2, 4, 2, Distance::kL1, true, DType::kBF16, shared};
    const std::vector<int> lengths = {9000, 1, 300, 17000, 64};
    auto tc = make_twin(c, lengths, 0, 1300 + shared, 4096);
    const int nqh = c.num_q_heads(), d = c.d, max_batch = static_cast<int>(lengths.size());
    const float scale = 1.0f / std::sqrt(float(d));
    const cuda::DeviceLayer L = tc->gpu->layer(0);
    const PolicyConfig planned = parse_policy(policy_spec(c, 256));
    const size_t bytes = cuda::SparseDecoder::workspace_bytes(L, nqh, max_batch, 17000, planned);
    DeviceBuffer<std::byte> ws(bytes);
    ws.fill_bytes(0xab);
    FastRng r(1350 + shared);
    auto q_dev = to_device(fast_normal(r, size_t(max_batch) * nqh * d));
    DeviceBuffer<float> out(size_t(max_batch) * nqh * d), ref(size_t(max_batch) * nqh * d);
    cuda::SparseDecoder self_sized(nqh);
    std::vector<int> all(max_batch);
    std::iota(all.begin(), all.end(), 0);
    for (const std::vector<int>& which : {all, std::vector<int>{1}, std::vector<int>{3, 0}}) {
      const cuda::DeviceBatch batch = tc->gpu->batch(0, tc->gpu_ids(which));
      const size_t n = which.size() * nqh * d;
      for (int budget : {256, 17, 1})
        for (Path path : {Path::kAuto, Path::kFused, Path::kIndices}) {
          SCOPED_TRACE(c.name() + " batch " + std::to_string(which.size()) + " budget " +
                       std::to_string(budget) + " path " + std::to_string(int(path)));
          PolicyConfig p = planned;
          p.budget = budget;
          cuda::SparseDecoder mine(nqh);
          mine.use_workspace(ws.data(), bytes, L, batch.batch, batch.max_length, p, nullptr);
          mine.set_topk_path(path);
          out.fill_bytes(0xff);
          ref.fill_bytes(0xff);
          mine.run(L, batch, q_dev.data(), p, scale, out.data(), nullptr);
          self_sized.set_topk_path(path);
          self_sized.run(L, batch, q_dev.data(), p, scale, ref.data(), nullptr);
          const auto a = download_array(out.data(), n), b = download_array(ref.data(), n);
          ASSERT_EQ(std::memcmp(a.data(), b.data(), n * sizeof(float)), 0);
          if (path != Path::kIndices) continue;
          const int rows = static_cast<int>(which.size()) * (shared ? c.kv_heads : nqh);
          const auto want_counts = download_array(self_sized.counts(), rows);
          cuda::SparseDecoder selector(nqh);
          selector.use_workspace(ws.data(), bytes, L, batch.batch, batch.max_length, p, nullptr);
          selector.select(L, batch, q_dev.data(), p, nullptr);
          ASSERT_EQ(download_array(selector.counts(), rows), want_counts);
          ASSERT_EQ(selector.index_stride(), self_sized.index_stride());
          const auto got_idx = download_array(selector.indices(), rows * selector.index_stride());
          const auto want_idx =
              download_array(self_sized.indices(), rows * self_sized.index_stride());
          for (int row = 0; row < rows; ++row)
            for (int i = 0; i < want_counts[row]; ++i) {
              const size_t at = row * self_sized.index_stride() + i;
              ASSERT_EQ(got_idx[at], want_idx[at]) << "row " << row << " entry " << i;
            }
        }
    }
    cuda::SparseDecoder small(nqh);
    const cuda::DeviceBatch batch = tc->gpu->batch(0, tc->gpu_ids(all));
    EXPECT_THAT(
        [&] {
          small.use_workspace(ws.data(), bytes / 2, L, batch.batch, batch.max_length, planned,
                              nullptr);
        },
        ::testing::ThrowsMessage<Error>(HasSubstr("bytes given")));
  }
}

// A planned step (sparse on each top-k path, then dense) is captured into a CUDA graph in global
// capture mode (which fails on any cudaMalloc, memset on another stream or synchronization) and
// replayed; the replay's output equals a direct run's bit for bit.
TEST_F(CudaDecode, PlannedStepCapturesInACudaGraph) {
  using Path = cuda::SparseDecoder::TopKPath;
  DecodeCase c{128, 16, 2, 4, 2, Distance::kL1, true, DType::kF16, false};
  auto tc = make_twin(c, {700, 33, 9000}, 0, 1200, 4096);
  cudaStream_t stream = nullptr;
  cuda::check(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "cudaStreamCreate");
  struct Destroy {
    cudaStream_t s;
    ~Destroy() { cudaStreamDestroy(s); }
  } destroy{stream};
  const std::vector<int> seqs = all_sequences(*tc);
  const int nqh = c.num_q_heads(), d = c.d, B = static_cast<int>(seqs.size());
  const size_t n = size_t(B) * nqh * d;
  FastRng r(1201);
  auto q_dev = to_device(fast_normal(r, n));
  DeviceBuffer<float> out(n), dense_out(n), ref(n), dense_ref(n);
  const cuda::DeviceLayer L = tc->gpu->layer(0);
  const PolicyConfig pc = parse_policy(policy_spec(c, 64));
  const float scale = 1.0f / std::sqrt(float(d));
  for (Path path : {Path::kIndices, Path::kFused, Path::kAuto}) {
    SCOPED_TRACE("path " + std::to_string(int(path)));
    cuda::SparseDecoder dec(nqh);
    dec.set_topk_path(path);
    dec.plan(L, B, 9000, pc);
    const cuda::DeviceBatch batch = tc->gpu->batch(0, tc->gpu_ids(seqs), stream);
    dec.run(L, batch, q_dev.data(), pc, scale, ref.data(), stream);
    dec.run_dense(L, batch, q_dev.data(), scale, dense_ref.data(), stream);
    cuda::check(cudaStreamSynchronize(stream), "direct run");
    out.fill_bytes(0xff);
    dense_out.fill_bytes(0xff);
    device_sync();
    cudaGraph_t graph = nullptr;
    cuda::check(cudaStreamBeginCapture(stream, cudaStreamCaptureModeGlobal), "begin capture");
    std::string error;
    try {
      dec.run(L, batch, q_dev.data(), pc, scale, out.data(), stream);
      dec.run_dense(L, batch, q_dev.data(), scale, dense_out.data(), stream);
    } catch (const Error& e) {
      error = e.what();
    }
    const cudaError_t end = cudaStreamEndCapture(stream, &graph);
    ASSERT_EQ(error, "") << "a planned step could not be captured";
    ASSERT_EQ(end, cudaSuccess) << cudaGetErrorString(end);
    cudaGraphExec_t exec = nullptr;
    cuda::check(cudaGraphInstantiate(&exec, graph, 0), "cudaGraphInstantiate");
    for (int replay = 0; replay < 2; ++replay) {  // twice: the kept-zero state survives a replay
      cuda::check(cudaGraphLaunch(exec, stream), "cudaGraphLaunch");
      cuda::check(cudaStreamSynchronize(stream), "graph replay");
      const auto a = download_array(out.data(), n), b = download_array(ref.data(), n);
      ASSERT_EQ(std::memcmp(a.data(), b.data(), n * sizeof(float)), 0) << "replay " << replay;
      const auto da = download_array(dense_out.data(), n), db = download_array(dense_ref.data(), n);
      ASSERT_EQ(std::memcmp(da.data(), db.data(), n * sizeof(float)), 0)
          << "dense, replay " << replay;
    }
    cudaGraphExecDestroy(exec);
    cudaGraphDestroy(graph);
  }
}

// ~100000 tokens: selections and outputs still match the CPU exactly / within tolerance.
TEST_F(CudaDecode, LargeSequencesMatchCpu) {
  int index = 0;
  for (bool shared : {false, true}) {
    ++index;
    DecodeCase c{128,   64,
                 2,     4,
                 2,     shared ? Distance::kL2 : Distance::kL1,
                 true,  shared ? DType::kBF16 : DType::kF16,
                 shared};
    auto tc = make_twin(c, {100000, 3000, 7}, 1, 600 + index, 4096);
    cuda::SparseDecoder dec(c.num_q_heads());
    for (int budget : {256, 2048}) {
      compare_step(*tc, c, 0, budget, dec, 610 + index + budget);
      if (HasFatalFailure()) return;
    }
    tc->append_batch(0, all_sequences(*tc));
    compare_step(*tc, c, 0, 256, dec, 620 + index);
    if (HasFatalFailure()) return;
  }
}

}  // namespace
}  // namespace adamas::test
