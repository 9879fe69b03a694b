// A Llama-family model (Llama, Mistral, Qwen2) on the CPU, and an inference session over it.
//
// Session::prefill runs a prompt in chunks: each layer appends the chunk's post-RoPE K/V to the
// paged cache and attends with chunked dense causal attention (ops.h prefill_attention).
// Session::decode runs one token for each of a batch of sequences: K/V appended, then the layer's
// attention goes through DecodeAttention with the selection policy (layers below dense_layers,
// budget ≥ length and policy `full` attend densely, as the policy decides).
#pragma once

#include <filesystem>
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "adamas/cache/paged_kv_cache.h"
#include "adamas/decode/decode_attention.h"
#include "adamas/model/config.h"
#include "adamas/model/weights.h"
#include "adamas/policy/policy.h"

namespace adamas::model {

class LlamaModel {
 public:
  LlamaModel(ModelConfig config, ModelWeights weights);
  // config.json + safetensors of a Hugging Face model directory.
  static std::unique_ptr<LlamaModel> load(const std::filesystem::path& dir);

  const ModelConfig& config() const { return config_; }
  const ModelWeights& weights() const { return weights_; }
  const std::vector<float>& inv_freq() const { return inv_freq_; }

 private:
  ModelConfig config_;
  ModelWeights weights_;
  std::vector<float> inv_freq_;
};

struct RuntimeOptions {
  PolicyConfig policy;  // default: full
  DType kv_dtype = DType::kF16;
  int page_size = 64;
  int max_tokens = 4096;    // KV cache capacity over all sequences (rounded up to pages)
  int max_batch = 1;        // sequences alive at once (capacity is max_tokens in total)
  int prefill_chunk = 256;  // tokens per prefill step
  int threads = 0;          // ≤ 0: OpenMP's default
  // Store key codes and Quest min/max whatever the policy, so that set_policy() can switch to
  // any policy over the same cache (evaluations comparing policies after one prefill).
  bool any_policy = false;
};

class Session {
 public:
  Session(const LlamaModel& model, RuntimeOptions options);
  ~Session();

  SeqId add_sequence();
  void remove_sequence(SeqId seq);
  int length(SeqId seq) const;

  // Appends `tokens` to the sequence, in chunks of options.prefill_chunk. logits: [vocab] for the
  // last token, or [tokens.size()][vocab] with all_logits. progress(done, total) after each chunk.
  // With thresholds=calibrated the policy's key thresholds are calibrated afterwards.
  void prefill(SeqId seq, std::span<const int32_t> tokens, float* logits, bool all_logits = false,
               const std::function<void(int, int)>& progress = {});

  // Rolls the sequence back to its first `length` tokens (e.g. to the end of a prompt).
  void truncate(SeqId seq, int length);
  // Switches the decode policy; the cache must hold what it reads (RuntimeOptions::any_policy).
  // For an adamas policy the key thresholds are made the policy's: with thresholds=calibrated
  // every layer ≥ dense_layers is calibrated from the keys stored so far (when there are any;
  // prefill calibrates otherwise), else the policy's fixed thresholds (or the defaults for its
  // bits) are restored; codes of stored keys are re-encoded where the thresholds change.
  void set_policy(const PolicyConfig& policy);

  // Called at every decode step, for every layer, with the step's post-RoPE queries
  // [seqs.size()][num_heads][head_dim] after the step's K/V were appended to the cache and before
  // attention (evaluations capture real queries with it). Empty: none.
  using QueryObserver =
      std::function<void(int layer, std::span<const SeqId> seqs, const float* q)>;
  void set_query_observer(QueryObserver observer) { query_observer_ = std::move(observer); }

  // One token for each sequence (a batch): logits [seqs.size()][vocab].
  void decode(std::span<const SeqId> seqs, std::span<const int32_t> tokens, float* logits);

  const LlamaModel& model() const { return model_; }
  const PagedKVCache& cache() const { return *cache_; }
  const SelectionPolicy& policy() const { return *policy_; }
  const RuntimeOptions& options() const { return options_; }
  // Decode attention stage times accumulated over decode() calls.
  const StageTimes& attention_times() const { return times_; }

 private:
  struct Buffers;
  void forward_layer(int layer, int n, const int32_t* positions, Buffers& b,
                     const std::function<void(const float* q, float* out)>& attend);
  void logits(const float* hidden, int n, float* out);
  void check_window(int length) const;

  const LlamaModel& model_;
  RuntimeOptions options_;
  std::unique_ptr<PagedKVCache> cache_;
  std::unique_ptr<SelectionPolicy> policy_;
  std::unique_ptr<DecodeAttention> decode_;
  std::unique_ptr<DecodeAttention> decode_serial_;  // steps too small to be worth a thread team
  std::unique_ptr<Buffers> buf_;
  StageTimes times_;
  QueryObserver query_observer_;
};

}  // namespace adamas::model
