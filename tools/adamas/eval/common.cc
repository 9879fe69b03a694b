#include "common.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <exception>
#include <fstream>
#include <sstream>
#include <thread>

#include "adamas/common/error.h"

namespace adamas::eval {

std::vector<PolicyRun> expand_policies(const std::vector<std::string>& specs,
                                       const std::vector<int>& budgets, int page_size) {
  if (specs.empty()) throw Error("no policies given (e.g. --policies 'full;adamas;quest')");
  for (int b : budgets)
    if (b < 1) throw Error(fmt::format("budgets must be ≥ 1 token, got {}", b));
  std::vector<PolicyRun> runs;
  bool have_full = false;
  for (const std::string& spec : specs) {
    PolicyConfig base = parse_policy(spec);
    if (base.kind == PolicyKind::kFull) {
      if (!have_full) runs.push_back({spec, base, 0});
      have_full = true;
      continue;
    }
    const bool fixed = spec.find("budget=") != std::string::npos;
    if (!fixed && budgets.empty())
      throw Error(fmt::format("policy '{}' needs a budget: give --budgets", spec));
    const std::vector<int> bs = fixed ? std::vector<int>{base.budget} : budgets;
    for (int b : bs) {
      if (base.kind == PolicyKind::kQuest && b < page_size) continue;  // less than one page
      PolicyConfig c = base;
      c.budget = b;
      c.validate();
      runs.push_back({spec, c, b});
    }
  }
  return runs;
}

void run_jobs(int n, int jobs, const std::function<void(int)>& fn) {
  jobs = std::clamp(jobs, 1, std::max(n, 1));
  if (jobs == 1) {
    for (int i = 0; i < n; ++i) fn(i);
    return;
  }
  std::mutex mu;
  int next = 0;
  std::exception_ptr error;
  auto worker = [&] {
    for (;;) {
      int i;
      {
        std::lock_guard<std::mutex> lock(mu);
        if (next >= n || error) return;
        i = next++;
      }
      try {
        fn(i);
      } catch (...) {
        std::lock_guard<std::mutex> lock(mu);
        if (!error) error = std::current_exception();
        return;
      }
    }
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < jobs; ++t) threads.emplace_back(worker);
  for (auto& t : threads) t.join();
  if (error) std::rethrow_exception(error);
}

void ProgressCounter::add(int64_t n) {
  std::lock_guard<std::mutex> lock(mu_);
  done_ += n;
  if (fn_) fn_(std::min(done_, total_), total_);
}

std::string DeviceChoice::describe() const {
  std::string s = fmt::format("device: {}", model::device_name(device));
  if (!why_cpu.empty()) s += fmt::format(" (auto: {})", why_cpu);
  return s;
}

namespace {

std::string why_no_cuda() {
#ifdef ADAMAS_BUILT_WITH_CUDA
  return "no usable CUDA device";
#else
  return "this build has no CUDA runtime";
#endif
}

}  // namespace

DeviceChoice choose_device(const std::string& value, const std::string& flag) {
  if (value != "cpu" && value != "cuda" && value != "auto")
    throw Error(fmt::format("{}: unknown device '{}': expected cpu, cuda or auto", flag, value));
  DeviceChoice c;
  c.device = model::parse_device(value);
  if (value == "cuda" && !model::cuda_runtime_available())
    throw Error(fmt::format("{} cuda: {}; use {} cpu", flag, why_no_cuda(), flag));
  if (value == "auto" && c.device == model::Device::kCpu) c.why_cpu = why_no_cuda();
  return c;
}

void check_policy_on_device(model::Device device, const PolicyConfig& policy,
                            const std::string& spec, const std::string& flag) {
  const std::string why = model::unsupported_reason(device, policy);
  if (!why.empty())
    throw Error(fmt::format("{}: policy '{}' cannot run with --device {}: {}", flag, spec,
                            model::device_name(device), why));
}

std::vector<std::string> specs_for_device(model::Device device,
                                          const std::vector<std::string>& specs, bool given,
                                          const std::string& flag, std::string* left_out) {
  std::vector<std::string> kept;
  for (const std::string& spec : specs) {
    const PolicyConfig pc = parse_policy(spec);
    if (given) check_policy_on_device(device, pc, spec, flag);
    if (model::unsupported_reason(device, pc).empty()) {
      kept.push_back(spec);
    } else if (left_out != nullptr) {
      *left_out += (left_out->empty() ? "" : ", ") + spec;
    }
  }
  return kept;
}

void check_kv_dtype_on_device(model::Device device, DType dtype, const std::string& flag) {
  if (device == model::Device::kCuda && dtype != DType::kF16 && dtype != DType::kBF16)
    throw Error(
        fmt::format("{} {}: the GPU KV cache holds f16 or bf16 (use {} f16 or bf16 with "
                    "--device cuda)",
                    flag, dtype_name(dtype), flag));
}

std::string csv_quote(const std::string& s) {
  std::string out = "\"";
  for (char ch : s) {
    if (ch == '"') {
      out += "\"\"";
    } else if (ch == '\n') {
      out += "\\n";
    } else {
      out += ch;
    }
  }
  return out + "\"";
}

int argmax(const float* x, int n) { return static_cast<int>(std::max_element(x, x + n) - x); }

double nll_of(const float* logits, int n, int target) {
  double mx = -INFINITY;
  for (int i = 0; i < n; ++i) mx = std::max(mx, double{logits[i]});
  double sum = 0;
  for (int i = 0; i < n; ++i) sum += std::exp(double{logits[i]} - mx);
  return std::log(sum) + mx - double{logits[target]};
}

std::vector<std::string> read_documents(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(fmt::format("cannot read the text file '{}'", path.string()));
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string text = ss.str();
  std::vector<std::string> docs;
  const std::string sep = "\x1e\n";
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find(sep, start);
    if (end == std::string::npos) end = text.size();
    if (end > start) docs.push_back(text.substr(start, end - start));
    start = end + sep.size();
  }
  return docs;
}

}  // namespace adamas::eval
