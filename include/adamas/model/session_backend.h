// What a backend implements to run a Session (llama.h): the CPU runtime (make_cpu_session, this
// folder) and the CUDA runtime (cuda/model_runtime.h). The facade checks nothing a backend must
// not rely on; each backend validates its own inputs with messages naming the field.
#pragma once

#include <functional>
#include <memory>
#include <span>

#include "adamas/model/llama.h"

namespace adamas::model {

class SessionBackend {
 public:
  virtual ~SessionBackend() = default;
  virtual SeqId add_sequence() = 0;
  virtual void remove_sequence(SeqId seq) = 0;
  virtual int length(SeqId seq) const = 0;
  virtual void prefill(SeqId seq, std::span<const int32_t> tokens, float* logits, bool all_logits,
                       const std::function<void(int, int)>& progress) = 0;
  virtual void truncate(SeqId seq, int length) = 0;
  virtual void set_policy(const PolicyConfig& policy) = 0;
  virtual void set_query_observer(QueryObserver observer) = 0;
  virtual void decode(std::span<const SeqId> seqs, std::span<const int32_t> tokens,
                      float* logits) = 0;
  virtual const PagedKVCache* host_cache() const { return nullptr; }
  virtual size_t cache_bytes() const = 0;
  virtual int free_pages() const = 0;
  virtual const RuntimeOptions& options() const = 0;
  virtual const StageTimes& attention_times() const = 0;
  virtual StepProfile step_profile() const { return {}; }
};

std::unique_ptr<SessionBackend> make_cpu_session(const LlamaModel& model, RuntimeOptions options);

}  // namespace adamas::model
