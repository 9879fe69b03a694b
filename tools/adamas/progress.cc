#include "progress.h"

#include <fmt/format.h>
#include <unistd.h>

#include <cstdio>

namespace adamas::cli {

Progress::Progress(std::string label, int64_t total)
    : label_(std::move(label)),
      total_(total > 0 ? total : 1),
      tty_(isatty(fileno(stderr)) != 0),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_) {}

void Progress::update(int64_t done) {
  const auto now = std::chrono::steady_clock::now();
  const int percent = static_cast<int>(100 * done / total_);
  const double elapsed = std::chrono::duration<double>(now - start_).count();
  if (tty_) {
    if (now - last_draw_ < std::chrono::milliseconds(100) && done < total_) return;
    last_draw_ = now;
    const int width = 30, filled = width * percent / 100;
    const double eta = done > 0 ? elapsed * (total_ - done) / done : 0.0;
    fmt::print(stderr, "\r{:<28} [{}{}] {:3d}%  {:.1f}s, ~{:.0f}s left ", label_,
               std::string(filled, '#'), std::string(width - filled, '.'), percent, elapsed, eta);
  } else if (percent / 25 != last_percent_ / 25) {  // a line per quarter when logging to a file
    fmt::print(stderr, "{}: {}% ({:.1f}s)\n", label_, percent, elapsed);
  }
  last_percent_ = percent;
}

void Progress::finish() {
  if (finished_) return;
  finished_ = true;
  update(total_);
  if (tty_) fmt::print(stderr, "\n");
}

Progress::~Progress() { finish(); }

}  // namespace adamas::cli
