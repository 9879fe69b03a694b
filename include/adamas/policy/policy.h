// Selection policies: which keys each query head attends to at a decode step
// (docs/method.md steps 5, 7).
//
// A policy works on one "head task": one sequence, one KV head and the nq query heads of its
// GQA group, at one layer. It runs in three stages so that callers can time each across all
// tasks (decode/decode_attention.h):  encode (query codes) → estimate (scores) → select (top-k).
// Budget semantics, the same for every sparse policy: `budget` tokens per query head, the current
// (last) token always among them; budget ≥ length, layer < dense_layers, or policy `full` attend
// to everything (dense attention, exactly).
//
// GQA: kPerQueryHead selects separately for each query head; kGroupShared selects once per KV
// head from the group's summed scores, so each key row is read once for the whole group.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "adamas/cache/paged_kv_cache.h"
#include "adamas/core/codes.h"

namespace adamas {

enum class PolicyKind { kFull, kOracle, kAdamas, kQuest, kStreaming };
enum class GqaMode { kPerQueryHead, kGroupShared };

std::string_view policy_kind_name(PolicyKind kind);

struct PolicyConfig {
  PolicyKind kind = PolicyKind::kFull;
  int budget = 256;      // tokens per query head, current token included
  int dense_layers = 2;  // layers [0, dense_layers) attend densely (paper: 2)
  GqaMode gqa = GqaMode::kPerQueryHead;
  // adamas
  int bits = 2;
  Distance distance = Distance::kL1;
  bool hadamard = true;
  std::vector<float> thresholds;  // fixed thresholds for the cache; empty: the defaults
  bool calibrate = false;         // per-head thresholds from the keys after prefill (ours)
  // Positions always inside an adamas budget (ours): the first keep_sinks tokens and the
  // keep_recent tokens before the current one; the estimate ranks the rest for what remains.
  int keep_sinks = 0;
  int keep_recent = 0;
  // streaming
  int sinks = 4;  // first tokens kept; the window is budget − sinks recent tokens

  void validate() const;         // throws adamas::Error naming the field
  std::string describe() const;  // e.g. "adamas(bits=2,l1,hadamard,per-head) budget=256"
};

// Parses "NAME[:key=value,...]" with NAME in full|oracle|adamas|quest|streaming and keys
// budget, dense_layers, gqa (per-head|shared), bits, dist (l1|l2|ip), hadamard (0|1),
// thresholds (paper|calibrated), keep_sinks, keep_recent (adamas), sinks (streaming).
// Unknown names or keys throw adamas::Error listing the accepted ones.
PolicyConfig parse_policy(std::string_view spec);

// One decode-step unit of work: a sequence's KV head and its query heads at one layer.
struct HeadTask {
  int layer = 0;
  SeqId seq = 0;
  int kv_head = 0;
  const float* q = nullptr;  // [nq][head_dim], post-RoPE, fp32
  int nq = 1;
  int length = 0;  // tokens in the cache for this layer, current token included
};

// Per-task working memory, reused across steps (grows, never shrinks).
struct HeadScratch {
  bool dense = false;               // attend to all positions
  bool shared = false;              // one selection row for all nq heads
  std::vector<QueryCode> qcodes;    // [nq]
  std::vector<uint16_t> distances;  // [rows][length]
  std::vector<uint32_t> histogram;  // [rows][histogram_size]: counts of each distance
  std::vector<float> scores;        // [rows][length or pages]
  std::vector<int32_t> indices;     // [rows][budget]
  std::vector<int> counts;          // [rows]
  int rows() const { return shared ? 1 : static_cast<int>(counts.size()); }
  // Row r of the selection; nullptr while there is none (a dense task before any sparse one),
  // whose count is 0 (offsetting the empty vector's null data() is undefined behaviour).
  const int32_t* row(int r, int budget) const {
    return indices.empty() ? nullptr : indices.data() + size_t(r) * budget;
  }
};

class SelectionPolicy {
 public:
  explicit SelectionPolicy(PolicyConfig config) : config_(std::move(config)) {}
  virtual ~SelectionPolicy() = default;
  const PolicyConfig& config() const { return config_; }

  // Checks that the cache holds what this policy reads (codes with matching bits, min/max, ...).
  virtual void check_cache(const PagedKVCache& cache) const { (void)cache; }
  bool is_dense(int layer, int length) const;

  // Stage 1..3 for one task. begin() sizes the scratch and decides dense vs sparse; the stages
  // are no-ops on a dense task.
  void begin(const HeadTask& task, HeadScratch& s) const;
  virtual void encode(const PagedKVCache&, const HeadTask&, HeadScratch&) const {}
  virtual void estimate(const PagedKVCache& cache, const HeadTask& task, HeadScratch& s) const = 0;
  virtual void select(const PagedKVCache& cache, const HeadTask& task, HeadScratch& s) const = 0;

 protected:
  PolicyConfig config_;
};

std::unique_ptr<SelectionPolicy> make_policy(const PolicyConfig& config);

// Sets the cache's key-code parameters (bits, Hadamard, thresholds) to what an adamas policy
// reads; other policies leave them alone.
void configure_cache_for(const PolicyConfig& policy, CacheConfig& cache);

}  // namespace adamas
