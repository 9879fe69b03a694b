#include "adamas/decode/decode_attention.h"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>

#include "adamas/core/attention.h"
#include "common/check.h"
#include "common/parallel.h"

namespace adamas {

void DecodePlan::validate() const {
  policy.validate();
  ADAMAS_CHECK(num_q_heads >= 1, "decode plan: num_q_heads ({}) must be ≥ 1", num_q_heads);
  ADAMAS_CHECK(max_batch >= 1, "decode plan: max_batch must be ≥ 1, got {}", max_batch);
  ADAMAS_CHECK(max_length >= 1, "decode plan: max_length must be ≥ 1, got {}", max_length);
  ADAMAS_CHECK(scale >= 0 && std::isfinite(scale),
               "decode plan: scale must be finite and ≥ 0 (0: 1/sqrt(head_dim)), got {}", scale);
}

DecodeAttention::DecodeAttention(const PagedKVCache& cache, int threads) : cache_(cache) {
  threads_ = threads > 0 ? threads : omp_get_max_threads();
}

DecodeAttention::DecodeAttention(const PagedKVCache& cache, const SelectionPolicy& policy,
                                 int num_q_heads, int threads)
    : DecodeAttention(cache, threads) {
  DecodePlan p;
  p.policy = policy.config();
  p.num_q_heads = num_q_heads;
  p.max_length = 1;
  plan(p);
  owned_policy_.reset();
  policy_ = &policy;
  policy.check_cache(cache);
}

void DecodeAttention::plan(const DecodePlan& plan) {
  const int kv_heads = cache_.config().num_kv_heads;
  ADAMAS_CHECK(plan.num_q_heads >= 1 && plan.num_q_heads % kv_heads == 0,
               "num_q_heads ({}) must be a positive multiple of num_kv_heads ({})",
               plan.num_q_heads, kv_heads);
  plan.validate();
  auto policy = make_policy(plan.policy);
  policy->check_cache(cache_);
  owned_policy_ = std::move(policy);
  policy_ = owned_policy_.get();
  plan_ = plan;
  num_q_heads_ = plan.num_q_heads;
  group_ = num_q_heads_ / kv_heads;
  scale_ =
      plan.scale > 0 ? plan.scale : 1.0f / std::sqrt(static_cast<float>(cache_.config().head_dim));
  scratch_.reserve(static_cast<size_t>(plan.max_batch) * kv_heads);
}

void DecodeAttention::run(int layer, const DecodeStep& step, const float* q, float* out) {
  run(layer, step.seqs, q, out, times_sink_);
}

const HeadScratch& DecodeAttention::scratch(int b, int kv_head) const {
  const int kv_heads = cache_.config().num_kv_heads;
  ADAMAS_CHECK(kv_head >= 0 && kv_head < kv_heads,
               "no selection for KV head {}: out of range [0, {})", kv_head, kv_heads);
  const size_t i = static_cast<size_t>(b) * kv_heads + kv_head;
  ADAMAS_CHECK(b >= 0 && i < scratch_.size(), "no selection for batch entry {} (last run had {})",
               b, scratch_.size() / kv_heads);
  return scratch_[i];
}

void DecodeAttention::run(int layer, std::span<const SeqId> seqs, const float* q, float* out,
                          StageTimes* times) {
  using clock = std::chrono::steady_clock;
  const int H = cache_.config().num_kv_heads, d = cache_.config().head_dim;
  const float scale = scale_;
  tasks_.clear();
  for (size_t b = 0; b < seqs.size(); ++b) {
    const int length = cache_.length(layer, seqs[b]);
    for (int h = 0; h < H; ++h) {
      HeadTask t;
      t.layer = layer;
      t.seq = seqs[b];
      t.kv_head = h;
      t.q = q + (b * num_q_heads_ + size_t(h) * group_) * d;
      t.nq = group_;
      t.length = length;
      tasks_.push_back(t);
    }
  }
  scratch_.resize(tasks_.size());
  const int n = static_cast<int>(tasks_.size());
  const int threads = std::min(threads_, n);
  std::vector<StageTimes> per_thread(times ? threads : 0);
  const auto start = clock::now();
  parallel_for(n, threads, [&](int i) {
    const HeadTask& t = tasks_[i];
    HeadScratch& s = scratch_[i];
    auto t0 = clock::now();
    auto lap = [&](double StageTimes::*stage) {
      if (!times) return;
      const auto now = clock::now();
      per_thread[omp_get_thread_num()].*stage += std::chrono::duration<double>(now - t0).count();
      t0 = now;
    };
    policy_->begin(t, s);
    if (!s.dense) {
      policy_->encode(cache_, t, s);
      lap(&StageTimes::encode);
      policy_->estimate(cache_, t, s);
      lap(&StageTimes::estimate);
      policy_->select(cache_, t, s);
      lap(&StageTimes::topk);
    }
    const PagedKV kv = cache_.kv(t.layer, t.seq, t.kv_head);
    float* o = out + (t.q - q);  // same offset as the task's queries
    if (s.dense) {
      dense_decode_attention(t.q, t.nq, kv, scale, o);
    } else if (s.shared) {
      sparse_decode_attention(t.q, t.nq, kv, s.indices.data(), s.counts[0], scale, o);
    } else {
      const int b = policy_->config().budget;
      for (int h = 0; h < t.nq; ++h) {
        sparse_decode_attention(t.q + h * d, 1, kv, s.row(h, b), s.counts[h], scale, o + h * d);
      }
    }
    lap(&StageTimes::attention);
  });
  if (times) {
    times->wall += std::chrono::duration<double>(clock::now() - start).count();
    for (const StageTimes& p : per_thread) {
      times->encode += p.encode / threads;
      times->estimate += p.estimate / threads;
      times->topk += p.topk / threads;
      times->attention += p.attention / threads;
    }
  }
}

}  // namespace adamas
