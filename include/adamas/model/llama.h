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
#include <string>
#include <string_view>
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
  // config.json + safetensors of a Hugging Face model directory; every weight is checked to be
  // finite (check_weights_finite).
  static std::unique_ptr<LlamaModel> load(const std::filesystem::path& dir);

  const ModelConfig& config() const { return config_; }
  const ModelWeights& weights() const { return weights_; }
  const std::vector<float>& inv_freq() const { return inv_freq_; }

 private:
  ModelConfig config_;
  ModelWeights weights_;
  std::vector<float> inv_freq_;
};

// Throws adamas::Error naming the first tensor (HF name) and element holding NaN or Inf. One
// parallel pass over the stored bits, at memory bandwidth (src/model/finite_weights.cc).
void check_weights_finite(const ModelWeights& weights);

// Where a Session runs: the CPU runtime (src/model) or the CUDA runtime (src/cuda/model).
enum class Device { kCpu, kCuda };
std::string_view device_name(Device device);
// "cpu", "cuda" or "auto" (cuda when this build has the CUDA runtime and a GPU is usable).
Device parse_device(std::string_view name);
// True when this build includes the CUDA runtime and a CUDA device can be used.
bool cuda_runtime_available();
// Empty when `device` runs `policy`, else why not (e.g. "quest runs on the CPU only").
std::string unsupported_reason(Device device, const PolicyConfig& policy);
// Device memory copy bandwidth in GB/s (bytes read + written per second), measured now: a large
// device-to-device copy on cuda, a host memcpy on cpu.
double copy_bandwidth_gbps(Device device);

struct RuntimeOptions {
  PolicyConfig policy;  // default: full
  Device device = Device::kCpu;
  DType kv_dtype = DType::kF16;  // the GPU cache holds f16 or bf16
  int page_size = 64;
  int max_tokens = 4096;    // KV cache capacity over all sequences (rounded up to pages)
  int max_batch = 1;        // sequences alive at once (capacity is max_tokens in total)
  int prefill_chunk = 256;  // tokens per prefill step
  int threads = 0;          // ≤ 0: OpenMP's default
  // Store key codes and Quest min/max whatever the policy, so that set_policy() can switch to
  // any policy over the same cache (evaluations comparing policies after one prefill).
  bool any_policy = false;
  // GPU: f32 checkpoints are converted to bf16 on upload unless this is set (then the GPU runs
  // f32 GEMMs and activations; f16/bf16 weights are always kept as stored).
  bool gpu_f32_weights = false;
  // GPU: replay decode steps as CUDA graphs (captured per batch size and context bucket).
  bool cuda_graphs = true;
  // GPU, without graphs: time each decode step's matrix products and attention with CUDA events
  // (Session::step_profile), a diagnostic of where a step's time goes.
  bool profile_steps = false;
  // Positions at or past the model's max_position_embeddings (RoPE beyond the trained context:
  // output of no known quality) are refused by prefill and decode unless this is set.
  bool allow_beyond_context = false;

  void validate() const;  // throws adamas::Error naming the field (policy included)
};

// The KV cache a session of `model` needs: its shape, the options' dtype and page size, codes for
// adamas and min/max for quest (both with any_policy), room for max_tokens plus a page per
// sequence. Backends adjust what they store.
CacheConfig cache_config_for(const ModelConfig& model, const RuntimeOptions& options);

// Called at every decode step, for every layer, with the step's post-RoPE queries
// [seqs.size()][num_heads][head_dim] (host memory) after the step's K/V were appended to the cache
// and before attention (evaluations capture real queries with it). Empty: none.
using QueryObserver = std::function<void(int layer, std::span<const SeqId> seqs, const float* q)>;

// Where decode steps' device time went (profile_steps), milliseconds summed over steps.
struct StepProfile {
  int steps = 0;
  double wall = 0;       // first kernel's start to the logits' arrival
  double products = 0;   // the matrix products (projections, MLP, LM head)
  double attention = 0;  // decode attention (every stage)
  double other() const { return wall - products - attention; }  // row kernels, gaps, copies
};

class SessionBackend;

// An inference session over a model: a paged KV cache, a decode policy and the backend that runs
// the forward pass (options.device). The facade is the same for every backend; what only one
// backend can give (the CPU cache's views) says so when asked of another.
class Session {
 public:
  Session(const LlamaModel& model, RuntimeOptions options);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  SeqId add_sequence();
  void remove_sequence(SeqId seq);
  int length(SeqId seq) const;

  // Appends `tokens` to the sequence, in chunks of options.prefill_chunk. logits: [vocab] for the
  // last token, or [tokens.size()][vocab] with all_logits (host memory). progress(done, total)
  // after each chunk. With thresholds=calibrated the policy's key thresholds are calibrated
  // afterwards.
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

  void set_query_observer(QueryObserver observer);

  // One token for each sequence (a batch): logits [seqs.size()][vocab] (host memory).
  // prefill and decode throw adamas::Error, naming the sequence and position, for positions
  // beyond the model's context (unless allow_beyond_context) and for logits holding NaN or +Inf
  // (overflowed or non-finite weights: never handed on as if they were a distribution).
  void decode(std::span<const SeqId> seqs, std::span<const int32_t> tokens, float* logits);

  const LlamaModel& model() const { return model_; }
  // The CPU backend's cache (views for evaluations); throws on another backend.
  const PagedKVCache& cache() const;
  size_t cache_bytes() const;
  int free_pages() const;
  const PolicyConfig& policy_config() const;
  const RuntimeOptions& options() const;
  // Decode attention stage times accumulated over decode() calls.
  const StageTimes& attention_times() const;
  // GPU with profile_steps: per-part device times of the decode steps so far; else empty.
  StepProfile step_profile() const;
  SessionBackend& backend() { return *backend_; }

 private:
  const LlamaModel& model_;
  std::unique_ptr<SessionBackend> backend_;
};

}  // namespace adamas::model
