// A one-line progress bar on stderr for long work (prefill, benchmarks, evaluations).
// Redraws at most every 100 ms; prints plain lines instead when stderr is not a terminal.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace adamas::cli {

class Progress {
 public:
  Progress(std::string label, int64_t total);
  void update(int64_t done);
  void finish();
  ~Progress();

 private:
  std::string label_;
  int64_t total_;
  bool tty_;
  bool finished_ = false;
  int last_percent_ = -1;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

}  // namespace adamas::cli
