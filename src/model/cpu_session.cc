// The CPU backend of a Session: fp32 activations, OpenBLAS products, the paged KV cache in host
// memory, decode attention through DecodeAttention (the CPU side of the decode seam).
#include <algorithm>
#include <cstring>

#include "adamas/model/ops.h"
#include "adamas/model/session_backend.h"
#include "common/check.h"

namespace adamas::model {
namespace {

struct Buffers {
  std::vector<float> x, xn, q, k, v, att, gate, up, tmp;
  std::vector<int32_t> pos;
  void reserve(const ModelConfig& c, int n) {
    const size_t N = n, qd = size_t(c.num_heads) * c.head_dim,
                 kvd = size_t(c.num_kv_heads) * c.head_dim;
    for (auto* b : {&x, &xn, &tmp}) b->resize(N * c.hidden_size);
    q.resize(N * qd);
    att.resize(N * qd);
    k.resize(N * kvd);
    v.resize(N * kvd);
    gate.resize(N * c.intermediate_size);
    up.resize(N * c.intermediate_size);
    pos.resize(N);
  }
};

class CpuSession final : public SessionBackend {
 public:
  CpuSession(const LlamaModel& model, RuntimeOptions options);

  SeqId add_sequence() override { return cache_->add_sequence(); }
  void remove_sequence(SeqId seq) override { cache_->remove_sequence(seq); }
  int length(SeqId seq) const override { return cache_->length(0, seq); }
  void prefill(SeqId seq, std::span<const int32_t> tokens, float* logits, bool all_logits,
               const std::function<void(int, int)>& progress) override;
  void truncate(SeqId seq, int length) override { cache_->truncate(seq, length); }
  void set_policy(const PolicyConfig& policy) override;
  void set_query_observer(QueryObserver observer) override {
    query_observer_ = std::move(observer);
  }
  void decode(std::span<const SeqId> seqs, std::span<const int32_t> tokens, float* logits) override;
  const PagedKVCache* host_cache() const override { return cache_.get(); }
  size_t cache_bytes() const override { return cache_->bytes(); }
  int free_pages() const override { return cache_->free_pages(); }
  const RuntimeOptions& options() const override { return options_; }
  const StageTimes& attention_times() const override { return times_; }

 private:
  void forward_layer(int layer, int n, const int32_t* positions, Buffers& b,
                     const std::function<void(const float* q, float* out)>& attend);
  void logits(const float* hidden, int n, float* out);
  void check_window(int length) const;

  const LlamaModel& model_;
  RuntimeOptions options_;
  std::unique_ptr<PagedKVCache> cache_;
  std::unique_ptr<DecodeAttention> decode_;
  std::unique_ptr<DecodeAttention> decode_serial_;  // steps too small to be worth a thread team
  Buffers buf_;
  StageTimes times_;
  QueryObserver query_observer_;
};

CpuSession::CpuSession(const LlamaModel& model, RuntimeOptions options)
    : model_(model), options_(std::move(options)) {
  const ModelConfig& c = model.config();
  options_.validate();
  const PolicyConfig& pc = options_.policy;
  const CacheConfig cc = cache_config_for(c, options_);
  cache_ = std::make_unique<PagedKVCache>(cc);
  set_policy(pc);
}

void CpuSession::set_policy(const PolicyConfig& policy) {
  make_policy(policy)->check_cache(*cache_);  // before any threshold changes
  if (policy.kind == PolicyKind::kAdamas) {
    const CacheConfig& cc = cache_->config();
    const bool has_keys = cache_->free_pages() < cc.num_pages;
    const std::vector<float> fixed =
        policy.thresholds.empty() ? default_thresholds(policy.bits) : policy.thresholds;
    for (int layer = 0; layer < cc.num_layers; ++layer) {
      if (policy.calibrate && layer >= policy.dense_layers) {
        if (has_keys) cache_->calibrate_thresholds(layer);
        continue;
      }
      for (int h = 0; h < cc.num_kv_heads; ++h) {
        const auto now = cache_->thresholds(layer, h);
        if (!std::equal(now.begin(), now.end(), fixed.begin(), fixed.end()))
          cache_->set_thresholds(layer, h, fixed);
      }
    }
  }
  DecodePlan plan;
  plan.policy = policy;
  plan.num_q_heads = model_.config().num_heads;
  plan.max_batch = options_.max_batch;
  plan.max_length = options_.max_tokens;
  decode_ = std::make_unique<DecodeAttention>(*cache_, options_.threads);
  decode_serial_ = std::make_unique<DecodeAttention>(*cache_, 1);
  for (DecodeAttention* d : {decode_.get(), decode_serial_.get()}) {
    d->plan(plan);
    d->set_times(&times_);
  }
  options_.policy = policy;
}

void CpuSession::check_window(int length) const {
  const int w = model_.config().sliding_window;
  ADAMAS_CHECK(w <= 0 || length <= w,
               "the model attends within a sliding window of {} tokens, which this runtime does "
               "not implement: contexts are limited to {} tokens, got {}",
               w, w, length);
}

void CpuSession::forward_layer(int layer, int n, const int32_t* positions, Buffers& b,
                               const std::function<void(const float*, float*)>& attend) {
  const ModelConfig& c = model_.config();
  const LayerWeights& w = model_.weights().layers[layer];
  const int D = c.hidden_size, T = options_.threads;
  auto bias = [](const std::vector<float>& v) { return v.empty() ? nullptr : v.data(); };
  rms_norm(b.x.data(), w.attn_norm.data(), n, D, c.rms_norm_eps, b.xn.data());
  const Product qkv[] = {{&w.q, bias(w.q_bias), b.q.data()},
                         {&w.k, bias(w.k_bias), b.k.data()},
                         {&w.v, bias(w.v_bias), b.v.data()}};
  linear_group(b.xn.data(), n, qkv, T);
  apply_rope(b.q.data(), n, c.num_heads, c.head_dim, positions, model_.inv_freq().data());
  apply_rope(b.k.data(), n, c.num_kv_heads, c.head_dim, positions, model_.inv_freq().data());
  attend(b.q.data(), b.att.data());  // appends b.k / b.v to the cache, then attends
  linear(b.att.data(), n, w.o, bias(w.o_bias), b.tmp.data(), T);
  const size_t nd = size_t(n) * D;
  for (size_t i = 0; i < nd; ++i) b.x[i] += b.tmp[i];
  rms_norm(b.x.data(), w.mlp_norm.data(), n, D, c.rms_norm_eps, b.xn.data());
  const Product gate_up[] = {{&w.gate, bias(w.gate_bias), b.gate.data()},
                             {&w.up, bias(w.up_bias), b.up.data()}};
  linear_group(b.xn.data(), n, gate_up, T);
  swiglu(b.gate.data(), b.up.data(), size_t(n) * c.intermediate_size);
  linear(b.gate.data(), n, w.down, bias(w.down_bias), b.tmp.data(), T);
  for (size_t i = 0; i < nd; ++i) b.x[i] += b.tmp[i];
}

void CpuSession::logits(const float* hidden, int n, float* out) {
  const ModelConfig& c = model_.config();
  std::vector<float> normed(size_t(n) * c.hidden_size);
  rms_norm(hidden, model_.weights().final_norm.data(), n, c.hidden_size, c.rms_norm_eps,
           normed.data());
  linear(normed.data(), n, model_.weights().lm_head, nullptr, out, options_.threads);
}

void CpuSession::prefill(SeqId seq, std::span<const int32_t> tokens, float* out, bool all_logits,
                         const std::function<void(int, int)>& progress) {
  const ModelConfig& c = model_.config();
  const int total = static_cast<int>(tokens.size());
  ADAMAS_CHECK(total >= 1, "prefill needs at least one token");
  const int start = length(seq);
  check_window(start + total);
  Buffers& b = buf_;
  const int chunk = options_.prefill_chunk;
  b.reserve(c, std::min(chunk, total));
  for (int done = 0; done < total; done += chunk) {
    const int n = std::min(chunk, total - done);
    for (int i = 0; i < n; ++i) b.pos[i] = start + done + i;
    embed_tokens(model_.weights().embed, tokens.data() + done, n, b.x.data());
    for (int layer = 0; layer < c.num_layers; ++layer) {
      forward_layer(layer, n, b.pos.data(), b, [&](const float* q, float* att) {
        cache_->append(layer, seq, b.k.data(), b.v.data(), n);
        prefill_attention(*cache_, layer, seq, q, n, c.num_heads, att, options_.threads);
      });
    }
    if (all_logits) {
      logits(b.x.data(), n, out + size_t(done) * c.vocab_size);
    } else if (done + n == total) {
      logits(b.x.data() + size_t(n - 1) * c.hidden_size, 1, out);
    }
    if (progress) progress(done + n, total);
  }
  if (options_.policy.kind == PolicyKind::kAdamas && options_.policy.calibrate) {
    for (int layer = options_.policy.dense_layers; layer < c.num_layers; ++layer)
      cache_->calibrate_thresholds(layer);
  }
}

void CpuSession::decode(std::span<const SeqId> seqs, std::span<const int32_t> tokens, float* out) {
  const ModelConfig& c = model_.config();
  const int B = static_cast<int>(seqs.size());
  ADAMAS_CHECK(B >= 1 && tokens.size() == seqs.size(),
               "decode: {} sequences but {} tokens (one token per sequence)", B, tokens.size());
  Buffers& b = buf_;
  b.reserve(c, std::max(B, static_cast<int>(b.pos.size())));
  for (int i = 0; i < B; ++i) {
    for (int j = 0; j < i; ++j)
      ADAMAS_CHECK(seqs[i] != seqs[j], "decode: sequence {} appears twice in the batch", seqs[i]);
    b.pos[i] = length(seqs[i]);
    ADAMAS_CHECK(b.pos[i] >= 1, "decode: sequence {} is empty; prefill it first", seqs[i]);
    check_window(b.pos[i] + 1);
  }
  embed_tokens(model_.weights().embed, tokens.data(), B, b.x.data());
  const size_t kvd = size_t(c.num_kv_heads) * c.head_dim;
  // A thread team costs microseconds per layer, and on a loaded machine a barrier can wait a
  // whole time slice: short contexts (K/V elements read per layer below ~1M) run on one thread.
  double kv_elems = 0;
  for (int i = 0; i < B; ++i) kv_elems += double(b.pos[i] + 1) * kvd;
  DecodeAttention& attn = kv_elems < (1 << 20) ? *decode_serial_ : *decode_;
  for (int layer = 0; layer < c.num_layers; ++layer) {
    forward_layer(layer, B, b.pos.data(), b, [&](const float* q, float* att) {
      for (int i = 0; i < B; ++i)
        cache_->append(layer, seqs[i], b.k.data() + i * kvd, b.v.data() + i * kvd, 1);
      if (query_observer_) query_observer_(layer, seqs, q);
      DecodeStep step;
      step.seqs = seqs;
      attn.run(layer, step, q, att);
    });
  }
  logits(b.x.data(), B, out);
}

}  // namespace

std::unique_ptr<SessionBackend> make_cpu_session(const LlamaModel& model, RuntimeOptions options) {
  return std::make_unique<CpuSession>(model, std::move(options));
}

}  // namespace adamas::model
