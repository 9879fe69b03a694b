// Shared pieces of the evaluation suite (`adamas eval passkey|ppl|recall`): policy × budget
// expansion, a small job pool with progress, the held-out text reader and logit helpers.
//
// Every evaluation prefills (densely) once and decodes every policy × budget from that cache
// (Session::truncate + set_policy over a cache that stores every policy's metadata). Independent
// prompts or documents run as jobs on `jobs` threads, each job with its own Session.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "adamas/common/dtype.h"
#include "adamas/model/llama.h"
#include "adamas/policy/policy.h"

namespace adamas::eval {

// progress(done, total) in units of work; called from worker threads, one call at a time.
using ProgressFn = std::function<void(int64_t done, int64_t total)>;

// One policy at one budget. `label` is the spec as written (e.g. "adamas:gqa=shared"); `budget`
// is 0 for full attention.
struct PolicyRun {
  std::string label;
  PolicyConfig config;
  int budget = 0;
  bool is_full() const { return config.kind == PolicyKind::kFull; }
};

// specs × budgets: `full` once, every other spec at each budget (a spec that names its own
// budget= keeps it). Quest needs at least one page: budgets below `page_size` are left out for
// it. Throws adamas::Error on a bad spec or budget.
std::vector<PolicyRun> expand_policies(const std::vector<std::string>& specs,
                                       const std::vector<int>& budgets, int page_size);

// Runs fn(i) for i in [0, n) on `jobs` threads (≤ 1: on the caller's). The first exception
// thrown by any job is rethrown once all threads have stopped.
void run_jobs(int n, int jobs, const std::function<void(int)>& fn);

// Thread-safe progress counter over a ProgressFn.
class ProgressCounter {
 public:
  ProgressCounter(ProgressFn fn, int64_t total) : fn_(std::move(fn)), total_(total) {}
  void add(int64_t n);

 private:
  std::mutex mu_;
  ProgressFn fn_;
  int64_t total_, done_ = 0;
};

// --device of every command that runs the model (generate, demo, eval, bench-e2e).
struct DeviceChoice {
  model::Device device = model::Device::kCpu;
  std::string why_cpu;  // when auto chose the CPU: why (e.g. "no usable CUDA device")
  // "device: cuda", "device: cpu" or "device: cpu (auto: no usable CUDA device)".
  std::string describe() const;
};
// Parses `value` (cpu, cuda or auto) and checks that cuda can be used; errors name `flag`.
DeviceChoice choose_device(const std::string& value, const std::string& flag = "--device");
// Throws, naming the spec, `flag` and --device, when `device` cannot run `policy`.
void check_policy_on_device(model::Device device, const PolicyConfig& policy,
                            const std::string& spec, const std::string& flag);
// The specs that `device` runs, in order. Specs the user gave (`given`) must all run (else
// check_policy_on_device throws); defaults it cannot run are left out and listed in *left_out.
std::vector<std::string> specs_for_device(model::Device device,
                                          const std::vector<std::string>& specs, bool given,
                                          const std::string& flag, std::string* left_out);
// The GPU cache holds f16 or bf16: throws naming `flag` for f32 on cuda.
void check_kv_dtype_on_device(model::Device device, DType dtype, const std::string& flag);

// A CSV field in double quotes (quotes doubled, newlines as \n).
std::string csv_quote(const std::string& s);

int argmax(const float* x, int n);
// −log softmax(logits)[target], in double.
double nll_of(const float* logits, int n, int target);

// Documents of a text file in the corpus format of tools/model/assemble_corpus.py: each document
// followed by a line holding only the byte 0x1e. A file without separators is one document.
std::vector<std::string> read_documents(const std::filesystem::path& path);

// Default location of the held-out excerpt shipped for `eval ppl` (relative to the repository).
inline constexpr const char* kDefaultHeldout = "tools/eval/data/heldout_excerpt.txt";

}  // namespace adamas::eval
