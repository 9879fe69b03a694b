// The CUDA Session backend (cuda/model_runtime.h). One stream; the host does the page bookkeeping
// (PageTables) and writes each step's inputs — token ids, positions, cache slots and the CSR page
// tables — into one pinned staging buffer that goes to the GPU in one copy. Everything after that
// copy is device work, so a decode step is captured once per (batch size, context bucket) as a
// CUDA graph and replayed: the graph's first node copies the staging buffer, its last copies the
// logits back.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>

#include "adamas/cuda/decode_attention.h"
#include "adamas/cuda/device_cache.h"
#include "adamas/cuda/kernels.h"
#include "adamas/cuda/model_kernels.h"
#include "adamas/cuda/model_runtime.h"
#include "common/check.h"
#include "cuda/model/device_weights.h"
#include "cuda/model/gemm.h"

namespace adamas::cuda {
namespace {

using model::LlamaModel;
using model::ModelConfig;
using model::RuntimeOptions;

// Decode graphs are captured for context lengths rounded up to this (grids and workspaces are
// sized by the bound; kernels read the true lengths from the tables).
constexpr int kLengthBucket = 4096;

int round_up(int64_t x, int64_t m) { return static_cast<int>((x + m - 1) / m * m); }

// Pinned host memory (the staging buffer and the logits): copies from it can run inside graphs.
template <class T>
class PinnedBuffer {
 public:
  PinnedBuffer() = default;
  ~PinnedBuffer() {
    if (p_) cudaFreeHost(p_);
  }
  PinnedBuffer(const PinnedBuffer&) = delete;
  PinnedBuffer& operator=(const PinnedBuffer&) = delete;
  void resize(size_t n) {
    if (n <= n_) return;
    if (p_) cudaFreeHost(p_);
    p_ = nullptr;
    check(cudaMallocHost(reinterpret_cast<void**>(&p_), n * sizeof(T)), "cudaMallocHost");
    n_ = n;
  }
  T* data() { return p_; }

 private:
  T* p_ = nullptr;
  size_t n_ = 0;
};

class CudaSession final : public model::SessionBackend {
 public:
  CudaSession(const LlamaModel& model, RuntimeOptions options);
  ~CudaSession() override;

  SeqId add_sequence() override { return cache_->page_tables().add_sequence(); }
  void remove_sequence(SeqId seq) override { cache_->page_tables().remove_sequence(seq); }
  int length(SeqId seq) const override { return cache_->page_tables().length(0, seq); }
  void prefill(SeqId seq, std::span<const int32_t> tokens, float* logits, bool all_logits,
               const std::function<void(int, int)>& progress) override;
  void truncate(SeqId seq, int length) override { cache_->truncate(seq, length); }
  void set_policy(const PolicyConfig& policy) override;
  void set_query_observer(model::QueryObserver observer) override {
    observer_ = std::move(observer);
  }
  void decode(std::span<const SeqId> seqs, std::span<const int32_t> tokens, float* logits) override;
  size_t cache_bytes() const override { return cache_->bytes(); }
  int free_pages() const override { return cache_->page_tables().free_pages(); }
  const RuntimeOptions& options() const override { return options_; }
  const StageTimes& attention_times() const override { return times_; }
  model::StepProfile step_profile() const override { return profile_; }

 private:
  // Step profiling (profile_steps, eager launches): events around products and attention.
  enum Part { kWall, kProducts, kAttention };
  int mark_begin(Part part);  // -1 unless marking
  void mark_end(int mark);
  void collect_profile();
  void product(const DeviceMatrix& W, const void* x, int n, float* y, float beta = 0.0f);
  bool profiling_ = false;
  bool marking_ = false;  // inside a profiled decode step
  std::vector<cudaEvent_t> event_pool_;
  std::vector<std::pair<Part, int>> marks_;  // part, index of its begin event (end = + 1)
  model::StepProfile profile_;

  // Offsets (in int32 elements) of one step's inputs in the staging buffers.
  struct StepLayout {
    int rows = 0, batch = 0, stride = 0;
    size_t tokens = 0, positions = 0, slots = 0, indptr = 0, lengths = 0, indices = 0, total = 0;
  };
  StepLayout layout(int rows, int batch, int stride) const;
  // Writes tokens/positions/slots and the CSR tables of `seqs` (lengths + extra) to the staging
  // buffer; returns the device view of the tables.
  BatchView stage(const StepLayout& L, std::span<const int32_t> tokens,
                  std::span<const int32_t> positions, std::span<const int32_t> slots,
                  std::span<const SeqId> seqs, int extra, int max_length);
  void upload(const StepLayout& L);
  // The forward pass of L.rows rows whose inputs are staged; prefill (one sequence) or decode.
  void forward(const StepLayout& L, const BatchView& tables, bool prefill,
               std::span<const SeqId> seqs);
  // Final norm + LM head for `rows` rows starting at `first`, logits into logits_dev_.
  void head(int first, int rows);
  void decode_eager(const StepLayout& L, const BatchView& tables, std::span<const SeqId> seqs);
  void check_tokens(std::span<const int32_t> tokens) const;
  void drop_graphs();
  void check_position(int64_t length) const;

  const LlamaModel& model_;
  RuntimeOptions options_;
  cudaStream_t stream_ = nullptr;
  std::unique_ptr<DeviceWeights> weights_;
  std::unique_ptr<DeviceKVCache> cache_;
  std::unique_ptr<DeviceDecodeAttention> decode_;
  std::unique_ptr<Gemm> gemm_;
  DType act_ = DType::kBF16;
  int max_rows_ = 0;    // rows of the activation buffers: max(prefill chunk, max batch)
  int max_stride_ = 0;  // pages of the longest sequence
  // Activations [rows][...]: fp32 between layers, `act_` for the inputs of products.
  DeviceBuffer<float> x_, qkv_, q_, k_, v_, att_, gate_up_, logits_dev_;
  DeviceBuffer<std::byte> xn_, att_act_, h_act_;
  DeviceBuffer<int32_t> staged_dev_;
  PinnedBuffer<int32_t> staged_host_;
  PinnedBuffer<float> logits_host_;
  size_t logits_rows_ = 0;
  std::map<std::pair<int, int>, cudaGraphExec_t> graphs_;  // (batch, length bucket)
  std::vector<float> q_host_;
  StageTimes times_;
  model::QueryObserver observer_;
};

CudaSession::CudaSession(const LlamaModel& model, RuntimeOptions options)
    : model_(model), options_(std::move(options)) {
  const ModelConfig& c = model.config();
  options_.validate();
  ADAMAS_CHECK(options_.kv_dtype == DType::kF16 || options_.kv_dtype == DType::kBF16,
               "the GPU KV cache holds f16 or bf16 (--kv-dtype), got {}",
               dtype_name(options_.kv_dtype));
  check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate");
  const DType stored = model.weights().dtype;
  act_ = options_.gpu_f32_weights ? DType::kF32 : (stored == DType::kF32 ? DType::kBF16 : stored);
  weights_ = std::make_unique<DeviceWeights>(model, act_, stream_);
  gemm_ = std::make_unique<Gemm>(stream_);

  CacheConfig cc = cache_config_for(c, options_);
  cc.store_codes = true;  // the GPU cache always keeps codes (adamas can be switched to)
  cc.store_page_minmax = false;
  cc.validate();
  cache_ = std::make_unique<DeviceKVCache>(cc);
  // Decode steps stage tables with the stride of their length bucket: size for the largest.
  max_stride_ =
      cc.pages_for(round_up(int64_t{options_.max_tokens} + options_.max_batch + 1, kLengthBucket));

  max_rows_ = std::max(options_.prefill_chunk, options_.max_batch);
  const size_t R = max_rows_, D = c.hidden_size, qd = size_t(c.num_heads) * c.head_dim,
               kvd = size_t(c.num_kv_heads) * c.head_dim, I = c.intermediate_size;
  const size_t act = dtype_size(act_);
  x_.resize(R * D);
  qkv_.resize(R * (qd + 2 * kvd));
  q_.resize(R * qd);
  k_.resize(R * kvd);
  v_.resize(R * kvd);
  att_.resize(R * qd);
  gate_up_.resize(R * 2 * I);
  xn_.resize(R * D * act);
  att_act_.resize(R * qd * act);
  h_act_.resize(R * I * act);
  const StepLayout biggest = layout(max_rows_, options_.max_batch, max_stride_);
  staged_dev_.resize(biggest.total);
  staged_host_.resize(biggest.total);
  logits_rows_ = options_.max_batch;
  logits_dev_.resize(logits_rows_ * c.vocab_size);
  logits_host_.resize(logits_rows_ * c.vocab_size);
  decode_ = std::make_unique<DeviceDecodeAttention>(*cache_);
  set_policy(options_.policy);
  profiling_ = options_.profile_steps && !options_.cuda_graphs;
  if (profiling_) {
    event_pool_.resize(2 * (5 * c.num_layers + 4));
    for (cudaEvent_t& e : event_pool_) check(cudaEventCreate(&e), "cudaEventCreate");
  }
}

int CudaSession::mark_begin(Part part) {
  if (!marking_) return -1;
  const int at = static_cast<int>(marks_.size()) * 2;
  marks_.push_back({part, at});
  check(cudaEventRecord(event_pool_.at(at), stream_), "cudaEventRecord");
  return at;
}

void CudaSession::mark_end(int mark) {
  if (mark >= 0) check(cudaEventRecord(event_pool_.at(mark + 1), stream_), "cudaEventRecord");
}

void CudaSession::product(const DeviceMatrix& W, const void* x, int n, float* y, float beta) {
  const int mark = mark_begin(kProducts);
  gemm_->linear(W, x, n, y, beta);
  mark_end(mark);
}

void CudaSession::collect_profile() {
  if (marks_.empty()) return;
  for (const auto& [part, at] : marks_) {
    float ms = 0;
    check(cudaEventElapsedTime(&ms, event_pool_[at], event_pool_[at + 1]), "cudaEventElapsedTime");
    (part == kWall       ? profile_.wall
     : part == kProducts ? profile_.products
                         : profile_.attention) += ms;
  }
  ++profile_.steps;
  marks_.clear();
}

CudaSession::~CudaSession() {
  drop_graphs();
  for (cudaEvent_t e : event_pool_) cudaEventDestroy(e);
  if (stream_) {
    cudaStreamSynchronize(stream_);
    cudaStreamDestroy(stream_);
  }
}

void CudaSession::set_policy(const PolicyConfig& policy) {
  policy.validate();
  DecodePlan plan;
  plan.policy = policy;
  plan.num_q_heads = model_.config().num_heads;
  plan.max_batch = options_.max_batch;
  plan.max_length = round_up(int64_t{options_.max_tokens} + 1, kLengthBucket);
  decode_->plan(plan);  // checks the policy against the cache before anything changes
  if (policy.kind == PolicyKind::kAdamas) {
    const CacheConfig& cc = cache_->config();
    const std::vector<float> fixed =
        policy.thresholds.empty() ? default_thresholds(policy.bits) : policy.thresholds;
    for (int layer = 0; layer < cc.num_layers; ++layer)
      for (int h = 0; h < cc.num_kv_heads; ++h)
        if (cache_->thresholds(layer, h) != fixed) cache_->set_thresholds(layer, h, fixed);
  }
  drop_graphs();  // the workspaces were re-planned: graphs captured with the old ones are stale
  options_.policy = policy;
}

void CudaSession::drop_graphs() {
  for (auto& [key, exec] : graphs_) cudaGraphExecDestroy(exec);
  graphs_.clear();
}

CudaSession::StepLayout CudaSession::layout(int rows, int batch, int stride) const {
  StepLayout L;
  L.rows = rows;
  L.batch = batch;
  L.stride = stride;
  size_t at = 0;
  auto take = [&](size_t n) {
    const size_t off = at;
    at += (n + 3) / 4 * 4;  // 16-byte aligned arrays
    return off;
  };
  L.tokens = take(rows);
  L.positions = take(rows);
  L.slots = take(rows);
  L.indptr = take(batch + 1);
  L.lengths = take(batch);
  L.indices = take(size_t(batch) * stride);
  L.total = at;
  return L;
}

BatchView CudaSession::stage(const StepLayout& L, std::span<const int32_t> tokens,
                             std::span<const int32_t> positions, std::span<const int32_t> slots,
                             std::span<const SeqId> seqs, int extra, int max_length) {
  int32_t* h = staged_host_.data();
  std::memset(h, 0, L.total * sizeof(int32_t));
  std::copy(tokens.begin(), tokens.end(), h + L.tokens);
  std::copy(positions.begin(), positions.end(), h + L.positions);
  std::copy(slots.begin(), slots.end(), h + L.slots);
  // CSR with a fixed stride per sequence (indptr[b] = b · stride), so that a graph's copy of the
  // staging buffer has one size for every step of its bucket.
  const PageTables& pt = cache_->page_tables();
  for (int b = 0; b < L.batch; ++b) {
    const auto pages = pt.pages(seqs[b]);
    ADAMAS_CHECK(static_cast<int>(pages.size()) <= L.stride, "page table of sequence {} too long",
                 seqs[b]);
    h[L.indptr + b] = b * L.stride;
    h[L.lengths + b] = pt.length(0, seqs[b]) + extra;
    std::copy(pages.begin(), pages.end(), h + L.indices + size_t(b) * L.stride);
  }
  h[L.indptr + L.batch] = L.batch * L.stride;
  const int32_t* d = staged_dev_.data();
  return BatchView{d + L.indptr, d + L.indices, d + L.lengths, L.batch, max_length};
}

void CudaSession::upload(const StepLayout& L) {
  check(cudaMemcpyAsync(staged_dev_.data(), staged_host_.data(), L.total * sizeof(int32_t),
                        cudaMemcpyHostToDevice, stream_),
        "step upload");
}

void CudaSession::check_tokens(std::span<const int32_t> tokens) const {
  const int vocab = model_.config().vocab_size;
  for (int32_t t : tokens)
    ADAMAS_CHECK(t >= 0 && t < vocab, "token id {} out of range [0, {}) (vocab_size)", t, vocab);
}

void CudaSession::check_position(int64_t length) const {
  const int w = model_.config().sliding_window;
  ADAMAS_CHECK(w <= 0 || length <= w,
               "the model attends within a sliding window of {} tokens, which this runtime does "
               "not implement: contexts are limited to {} tokens, got {}",
               w, w, length);
  ADAMAS_CHECK(length <= int64_t{options_.max_tokens} + options_.max_batch,
               "sequence of {} tokens exceeds the session's capacity (max_tokens {})", length,
               options_.max_tokens);
}

void CudaSession::forward(const StepLayout& L, const BatchView& tables, bool prefill,
                          std::span<const SeqId> seqs) {
  const ModelConfig& c = model_.config();
  const int n = L.rows, D = c.hidden_size, H = c.num_heads, Hkv = c.num_kv_heads, d = c.head_dim,
            I = c.intermediate_size;
  const int32_t* staged = staged_dev_.data();
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  embed_rows(weights_->embed().data, act_, c.vocab_size, D, staged + L.tokens, n, x_.data(),
             stream_);
  DecodeStep step;
  step.seqs = seqs;
  step.tables = tables;
  step.stream = stream_;
  for (int layer = 0; layer < c.num_layers; ++layer) {
    const DeviceLayerWeights& w = weights_->layer(layer);
    rms_norm_rows(x_.data(), w.attn_norm, n, D, c.rms_norm_eps, xn_.data(), act_, stream_);
    product(w.qkv, xn_.data(), n, qkv_.data());
    RopeArgs r;
    r.qkv = qkv_.data();
    r.bias = w.qkv_bias;
    r.positions = staged + L.positions;
    r.inv_freq = weights_->inv_freq();
    r.n = n;
    r.num_heads = H;
    r.num_kv_heads = Hkv;
    r.head_dim = d;
    r.q = q_.data();
    r.k = k_.data();
    r.v = v_.data();
    qkv_rope(r, stream_);
    append_kv(cache_->layer(layer), staged + L.slots, n, k_.data(), v_.data(), DType::kF32,
              stream_);
    if (prefill) {
      prefill_attention(cache_->layer(layer), tables, q_.data(), n, H, scale, att_.data(), stream_);
    } else {
      if (observer_) {
        q_host_.resize(size_t(n) * H * d);
        check(cudaMemcpyAsync(q_host_.data(), q_.data(), q_host_.size() * sizeof(float),
                              cudaMemcpyDeviceToHost, stream_),
              "query download");
        check(cudaStreamSynchronize(stream_), "query download");
        observer_(layer, seqs, q_host_.data());
      }
      const int mark = mark_begin(kAttention);
      decode_->run(layer, step, q_.data(), att_.data());
      mark_end(mark);
    }
    convert_rows(att_.data(), nullptr, int64_t(n) * H * d, H * d, att_act_.data(), act_, stream_);
    product(w.o, att_act_.data(), n, x_.data(), 1.0f);  // x += attention · Woᵀ
    if (w.o_bias) add_bias_rows(x_.data(), w.o_bias, int64_t(n) * D, D, stream_);
    rms_norm_rows(x_.data(), w.mlp_norm, n, D, c.rms_norm_eps, xn_.data(), act_, stream_);
    product(w.gate_up, xn_.data(), n, gate_up_.data());
    swiglu_rows(gate_up_.data(), w.gate_up_bias, n, I, h_act_.data(), act_, stream_);
    product(w.down, h_act_.data(), n, x_.data(), 1.0f);  // x += mlp
    if (w.down_bias) add_bias_rows(x_.data(), w.down_bias, int64_t(n) * D, D, stream_);
  }
}

void CudaSession::head(int first, int rows) {
  const ModelConfig& c = model_.config();
  const int D = c.hidden_size;
  rms_norm_rows(x_.data() + size_t(first) * D, weights_->final_norm(), rows, D, c.rms_norm_eps,
                xn_.data(), act_, stream_);
  product(weights_->lm_head(), xn_.data(), rows, logits_dev_.data());
}

void CudaSession::prefill(SeqId seq, std::span<const int32_t> tokens, float* logits,
                          bool all_logits, const std::function<void(int, int)>& progress) {
  const ModelConfig& c = model_.config();
  const int total = static_cast<int>(tokens.size());
  ADAMAS_CHECK(total >= 1, "prefill needs at least one token");
  check_tokens(tokens);
  ADAMAS_CHECK(options_.policy.kind != PolicyKind::kAdamas || !options_.policy.calibrate,
               "thresholds=calibrated runs on the CPU only for now (use --device cpu)");
  PageTables& pt = cache_->page_tables();
  const int start = pt.length(0, seq);
  check_position(int64_t{start} + total);
  const int chunk = options_.prefill_chunk;
  const size_t V = c.vocab_size;
  if (all_logits && logits_rows_ < static_cast<size_t>(std::min(chunk, total))) {
    drop_graphs();  // they copy logits into the buffers replaced here
    logits_rows_ = std::min(chunk, total);
    logits_dev_.resize(logits_rows_ * V);
    logits_host_.resize(logits_rows_ * V);
  }
  std::vector<int32_t> positions, slots;
  const SeqId seqs[1] = {seq};
  for (int done = 0; done < total; done += chunk) {
    const int n = std::min(chunk, total - done);
    const int p0 = start + done;
    const size_t pages_before = pt.pages(seq).size();
    pt.reserve(seq, int64_t{p0} + n);
    positions.resize(n);
    slots.resize(n);
    for (int i = 0; i < n; ++i) {
      positions[i] = p0 + i;
      slots[i] = pt.slot(seq, p0 + i);
    }
    const int stride = static_cast<int>(pt.pages(seq).size());
    const StepLayout L = layout(n, 1, stride);
    // The tables' length is the chunk's end: every layer attends over [0, p0 + n).
    const BatchView tables =
        stage(L, tokens.subspan(done, n), positions, slots, seqs, /*extra=*/n, p0 + n);
    try {
      upload(L);
      forward(L, tables, /*prefill=*/true, seqs);
      const int rows = all_logits ? n : 1, first = all_logits ? 0 : n - 1;
      if (all_logits || done + n == total) {
        head(first, rows);
        check(cudaMemcpyAsync(logits_host_.data(), logits_dev_.data(), rows * V * sizeof(float),
                              cudaMemcpyDeviceToHost, stream_),
              "logits download");
      }
      check(cudaStreamSynchronize(stream_), "prefill");
      if (all_logits) {
        std::memcpy(logits + size_t(done) * V, logits_host_.data(), n * V * sizeof(float));
      } else if (done + n == total) {
        std::memcpy(logits, logits_host_.data(), V * sizeof(float));
      }
    } catch (...) {
      pt.rollback(seq, pages_before);
      throw;
    }
    for (int layer = 0; layer < c.num_layers; ++layer) pt.set_length(layer, seq, p0 + n);
    if (progress) progress(done + n, total);
  }
}

void CudaSession::decode_eager(const StepLayout& L, const BatchView& tables,
                               std::span<const SeqId> seqs) {
  marking_ = profiling_;
  const int wall = mark_begin(kWall);
  upload(L);
  forward(L, tables, /*prefill=*/false, seqs);
  head(0, L.rows);
  check(cudaMemcpyAsync(logits_host_.data(), logits_dev_.data(),
                        size_t(L.rows) * model_.config().vocab_size * sizeof(float),
                        cudaMemcpyDeviceToHost, stream_),
        "logits download");
  mark_end(wall);
  marking_ = false;
}

void CudaSession::decode(std::span<const SeqId> seqs, std::span<const int32_t> tokens,
                         float* logits) {
  const ModelConfig& c = model_.config();
  const int B = static_cast<int>(seqs.size());
  ADAMAS_CHECK(B >= 1 && tokens.size() == seqs.size(),
               "decode: {} sequences but {} tokens (one token per sequence)", B, tokens.size());
  ADAMAS_CHECK(B <= options_.max_batch, "decode: batch of {} exceeds max_batch {}", B,
               options_.max_batch);
  check_tokens(tokens);
  PageTables& pt = cache_->page_tables();
  std::vector<int32_t> positions(B), slots(B);
  std::vector<int64_t> need(B);
  int max_length = 0;
  for (int i = 0; i < B; ++i) {
    for (int j = 0; j < i; ++j)
      ADAMAS_CHECK(seqs[i] != seqs[j], "decode: sequence {} appears twice in the batch", seqs[i]);
    positions[i] = pt.length(0, seqs[i]);
    ADAMAS_CHECK(positions[i] >= 1, "decode: sequence {} is empty; prefill it first", seqs[i]);
    need[i] = int64_t{positions[i]} + 1;
    check_position(need[i]);
    max_length = std::max(max_length, positions[i] + 1);
  }
  std::vector<size_t> pages_before(B);
  for (int i = 0; i < B; ++i) pages_before[i] = pt.pages(seqs[i]).size();
  pt.reserve(seqs, need);  // all or nothing
  for (int i = 0; i < B; ++i) slots[i] = pt.slot(seqs[i], positions[i]);
  const int bucket = round_up(max_length, kLengthBucket);
  const int stride = static_cast<int>(pt.pages_for(bucket));
  const StepLayout L = layout(B, B, stride);
  try {
    const BatchView tables = stage(L, tokens, positions, slots, seqs, 1, bucket);
    const bool graph = options_.cuda_graphs && !observer_;
    if (!graph) {
      decode_eager(L, tables, seqs);
    } else {
      auto it = graphs_.find({B, bucket});
      if (it == graphs_.end()) {
        cudaGraph_t g = nullptr;
        check(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal),
              "cudaStreamBeginCapture");
        try {
          decode_eager(L, tables, seqs);
        } catch (...) {
          cudaStreamEndCapture(stream_, &g);
          if (g) cudaGraphDestroy(g);
          throw;
        }
        check(cudaStreamEndCapture(stream_, &g), "cudaStreamEndCapture");
        cudaGraphExec_t exec = nullptr;
        const cudaError_t st = cudaGraphInstantiate(&exec, g, 0);
        cudaGraphDestroy(g);
        check(st, "cudaGraphInstantiate");
        it = graphs_.emplace(std::make_pair(B, bucket), exec).first;
      }
      check(cudaGraphLaunch(it->second, stream_), "cudaGraphLaunch");
    }
    check(cudaStreamSynchronize(stream_), "decode step");
    collect_profile();
  } catch (...) {
    marks_.clear();
    marking_ = false;
    for (int i = 0; i < B; ++i) pt.rollback(seqs[i], pages_before[i]);
    throw;
  }
  for (int i = 0; i < B; ++i)
    for (int layer = 0; layer < c.num_layers; ++layer)
      pt.set_length(layer, seqs[i], positions[i] + 1);
  std::memcpy(logits, logits_host_.data(), size_t(B) * c.vocab_size * sizeof(float));
}

}  // namespace

std::unique_ptr<model::SessionBackend> make_cuda_session(const model::LlamaModel& model,
                                                         model::RuntimeOptions options) {
  return std::make_unique<CudaSession>(model, std::move(options));
}

}  // namespace adamas::cuda
