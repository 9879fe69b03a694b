// The seam between the model runtime and a backend's decode attention (CPU: DecodeAttention,
// CUDA: cuda::CudaDecodeAttention; a PyTorch custom op plugs in the same way):
//   plan  once per shape bucket: policy, heads, largest batch and context → every workspace
//         sized; the only call that may allocate;
//   run   per layer of a step: no allocation, no host synchronization (on a device backend it
//         only enqueues work on the step's stream, so a whole step can be captured as a graph).
// q and out are [batch][num_q_heads][head_dim] fp32 in the backend's memory; the step's K/V are
// already appended to the cache. Selection follows the plan's PolicyConfig (policy/policy.h):
// layers below dense_layers, budget ≥ length and `full` attend densely.
#pragma once

#include <span>

#include "adamas/cache/page_table.h"
#include "adamas/policy/policy.h"

namespace adamas {

struct DecodePlan {
  PolicyConfig policy;
  int num_q_heads = 0;  // a multiple of the cache's num_kv_heads
  int max_batch = 1;
  int max_length = 1;  // longest sequence (current token included) a planned step may hold
  float scale = 0;     // softmax scale of q·k; 0: 1/sqrt(head_dim)

  void validate() const;  // throws adamas::Error naming the field
};

// One decode step's batch: host ids for backends that look sequences up in their cache (CPU),
// the same batch as CSR tables in the backend's memory for those that read tables (CUDA), built
// once per step for every layer.
struct DecodeStep {
  std::span<const SeqId> seqs;
  BatchView tables;
  void* stream = nullptr;  // cudaStream_t of a device backend; null: its default stream
};

class DecodeBackend {
 public:
  virtual ~DecodeBackend() = default;
  virtual void plan(const DecodePlan& plan) = 0;
  virtual void run(int layer, const DecodeStep& step, const float* q, float* out) = 0;
  virtual const DecodePlan& current_plan() const = 0;
};

}  // namespace adamas
