// The Session facade: picks the backend that runs the model (llama.h: RuntimeOptions::device).
// A library of its own (adamas_runtime) so that the CPU runtime does not depend on the CUDA one.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "adamas/model/llama.h"
#include "adamas/model/session_backend.h"
#include "adamas/runtime/bandwidth.h"
#include "common/check.h"
#ifdef ADAMAS_HAVE_CUDA_RUNTIME
#include "adamas/cuda/model_runtime.h"
#include "adamas/cuda/runtime.h"
#endif

namespace adamas::model {

std::string_view device_name(Device device) { return device == Device::kCuda ? "cuda" : "cpu"; }

bool cuda_runtime_available() {
#ifdef ADAMAS_HAVE_CUDA_RUNTIME
  return cuda::available();
#else
  return false;
#endif
}

Device parse_device(std::string_view name) {
  if (name == "cpu") return Device::kCpu;
  if (name == "cuda") return Device::kCuda;
  if (name == "auto") return cuda_runtime_available() ? Device::kCuda : Device::kCpu;
  throw Error(fmt::format("unknown device '{}': expected cpu, cuda or auto", name));
}

std::string unsupported_reason(Device device, const PolicyConfig& policy) {
  if (device == Device::kCpu) return {};
  switch (policy.kind) {
    case PolicyKind::kFull:
      return {};
    case PolicyKind::kAdamas:
      if (policy.calibrate || policy.distance == Distance::kIP || policy.keep_sinks > 0 ||
          policy.keep_recent > 0)
        return "thresholds=calibrated, dist=ip, keep_sinks and keep_recent run on the CPU only "
               "for now (use --device cpu)";
      return {};
    default:
      return fmt::format("{} runs on the CPU only (use --device cpu)",
                         policy_kind_name(policy.kind));
  }
}

double copy_bandwidth_gbps(Device device) {
  if (device == Device::kCpu) return host_copy_bandwidth_gbps(0);
#ifdef ADAMAS_HAVE_CUDA_RUNTIME
  ADAMAS_CHECK(cuda::available(), "device cuda: {}", cuda::device_summary());
  return cuda::copy_bandwidth_gbps();
#else
  throw Error("device cuda: this build has no CUDA runtime; use --device cpu");
#endif
}

namespace {

std::unique_ptr<SessionBackend> make_backend(const LlamaModel& model, RuntimeOptions options) {
  if (options.device == Device::kCpu) return make_cpu_session(model, std::move(options));
#ifdef ADAMAS_HAVE_CUDA_RUNTIME
  ADAMAS_CHECK(cuda::available(), "device cuda: {}", cuda::device_summary());
  return cuda::make_cuda_session(model, std::move(options));
#else
  throw Error(
      "device cuda: this build has no CUDA runtime (configure with nvcc present or "
      "-DADAMAS_CUDA=ON); use --device cpu");
#endif
}

// Positions [from, from + n) of `seq` must lie within the model's context.
void check_positions(const Session& s, SeqId seq, int from, int n, const char* what) {
  const int limit = s.model().config().max_position_embeddings;
  if (limit <= 0 || s.options().allow_beyond_context || from + n <= limit) return;
  throw Error(fmt::format(
      "{}: sequence {} would reach position {}, beyond the model's max_position_embeddings ({}): "
      "it was not trained that far (allow it with RuntimeOptions::allow_beyond_context, "
      "--allow-beyond-context on the command line)",
      what, seq, from + n - 1, limit));
}

// Logits must be a distribution's: NaN or +Inf mean overflowed activations or non-finite weights.
// (−Inf is a masked token, allowed.) A scan of the vocabulary per row: microseconds.
void check_logits(const float* logits, size_t rows, int vocab, const char* what,
                  std::span<const SeqId> seqs) {
  for (size_t r = 0; r < rows; ++r) {
    const float* row = logits + r * static_cast<size_t>(vocab);
    for (int i = 0; i < vocab; ++i) {
      if (!(row[i] < INFINITY)) {  // NaN or +Inf
        throw Error(fmt::format(
            "{}: the logits of sequence {} are not finite (token {} has {}{}): the activations "
            "overflowed (the weights were checked finite at load; an f16 KV cache can overflow "
            "where bf16 or f32 does not: --kv-dtype)",
            what, seqs[std::min(r, seqs.size() - 1)], i, row[i],
            rows > seqs.size() ? fmt::format(", prompt row {}", r) : std::string()));
      }
    }
  }
}

}  // namespace

Session::Session(const LlamaModel& model, RuntimeOptions options)
    : model_(model), backend_(make_backend(model, std::move(options))) {}
Session::~Session() = default;

SeqId Session::add_sequence() { return backend_->add_sequence(); }
void Session::remove_sequence(SeqId seq) { backend_->remove_sequence(seq); }
int Session::length(SeqId seq) const { return backend_->length(seq); }
void Session::prefill(SeqId seq, std::span<const int32_t> tokens, float* logits, bool all_logits,
                      const std::function<void(int, int)>& progress) {
  check_positions(*this, seq, length(seq), static_cast<int>(tokens.size()), "prefill");
  backend_->prefill(seq, tokens, logits, all_logits, progress);
  if (logits != nullptr && !tokens.empty())
    check_logits(logits, all_logits ? tokens.size() : 1, model_.config().vocab_size, "prefill",
                 std::span<const SeqId>(&seq, 1));
}
void Session::truncate(SeqId seq, int length) { backend_->truncate(seq, length); }
void Session::set_policy(const PolicyConfig& policy) { backend_->set_policy(policy); }
void Session::set_query_observer(QueryObserver observer) {
  backend_->set_query_observer(std::move(observer));
}
void Session::decode(std::span<const SeqId> seqs, std::span<const int32_t> tokens, float* logits) {
  for (SeqId seq : seqs) check_positions(*this, seq, length(seq), 1, "decode");
  backend_->decode(seqs, tokens, logits);
  if (logits != nullptr)
    check_logits(logits, seqs.size(), model_.config().vocab_size, "decode", seqs);
}
const PagedKVCache& Session::cache() const {
  const PagedKVCache* c = backend_->host_cache();
  ADAMAS_CHECK(c != nullptr,
               "the {} session keeps its KV cache on the device: host views of it "
               "need --device cpu",
               device_name(backend_->options().device));
  return *c;
}
size_t Session::cache_bytes() const { return backend_->cache_bytes(); }
int Session::free_pages() const { return backend_->free_pages(); }
const PolicyConfig& Session::policy_config() const { return backend_->options().policy; }
const RuntimeOptions& Session::options() const { return backend_->options(); }
const StageTimes& Session::attention_times() const { return backend_->attention_times(); }
StepProfile Session::step_profile() const { return backend_->step_profile(); }

}  // namespace adamas::model
