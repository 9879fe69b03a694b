// One layer's decode attention for a batch: the path of a decode step,
//   encode queries → estimate → top-k → sparse (or dense) attention,
// run per (sequence, KV head) task, tasks in parallel. A task's stages run back to back on one
// thread so that its distances are still in cache when top-k reads them, and a step has a single
// parallel region (one barrier).
#pragma once

#include <memory>
#include <span>
#include <vector>

#include "adamas/cache/paged_kv_cache.h"
#include "adamas/decode/decode_backend.h"
#include "adamas/policy/policy.h"

namespace adamas {

// Seconds, accumulated over run() calls. Stage times are thread time summed over threads and
// divided by the thread count (each thread times its own tasks); `wall` is the elapsed time of
// the steps. With balanced threads the stage times add up to about `wall`.
struct StageTimes {
  double encode = 0, estimate = 0, topk = 0, attention = 0;
  double wall = 0;
  double stages() const { return encode + estimate + topk + attention; }
};

// The CPU backend of the decode seam (decode_backend.h).
class DecodeAttention : public DecodeBackend {
 public:
  // As a backend: plan() makes the policy. threads ≤ 0: OpenMP's default.
  explicit DecodeAttention(const PagedKVCache& cache, int threads = 0);
  // With a policy the caller keeps alive (tests, benchmarks); scale 1/sqrt(head_dim).
  // num_q_heads must be a multiple of the cache's num_kv_heads.
  DecodeAttention(const PagedKVCache& cache, const SelectionPolicy& policy, int num_q_heads,
                  int threads = 0);

  void plan(const DecodePlan& plan) override;
  // Runs step.seqs (the CPU reads its cache; step.tables and step.stream are not used). Stage
  // times go to the sink set by set_times().
  void run(int layer, const DecodeStep& step, const float* q, float* out) override;
  const DecodePlan& current_plan() const override { return plan_; }
  void set_times(StageTimes* times) { times_sink_ = times; }

  // q and out: [seqs.size()][num_q_heads][head_dim] fp32. Sequence i attends over its keys of
  // `layer` (its current token already appended).
  void run(int layer, std::span<const SeqId> seqs, const float* q, float* out,
           StageTimes* times = nullptr);

  // The selection of the last run() for batch entry b and KV head h (tests, recall metrics).
  const HeadScratch& scratch(int b, int kv_head) const;
  const SelectionPolicy& policy() const { return *policy_; }

 private:
  const PagedKVCache& cache_;
  std::unique_ptr<SelectionPolicy> owned_policy_;
  const SelectionPolicy* policy_ = nullptr;
  DecodePlan plan_;
  int num_q_heads_ = 0;
  int group_ = 1;
  int threads_;
  float scale_ = 0;
  StageTimes* times_sink_ = nullptr;
  std::vector<HeadTask> tasks_;
  std::vector<HeadScratch> scratch_;
};

}  // namespace adamas
