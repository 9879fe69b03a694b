// Range checks attached to command-line options, so that a bad value is refused while the
// command line is parsed, before any work, with a message that names the flag and what is
// allowed (CLI11: "--heads: Value 0 not in range [1 - 1024]"), and never reaches a division by
// zero, an empty random range or an unbounded thread pool.
#pragma once

#include <CLI/CLI.hpp>
#include <bit>
#include <charconv>
#include <limits>
#include <string>

namespace adamas::cli {

inline constexpr int kMaxThreads = 1024;  // OpenMP teams beyond this crash or thrash
inline constexpr int kMaxHeads = 1024;
inline constexpr int kMaxPageSize = 1 << 16;
inline constexpr int kMaxTokens = 1 << 28;  // a context or budget: 268M tokens

// 1 ..= hi (default: any positive int).
inline CLI::Range positive(int hi = std::numeric_limits<int>::max()) { return CLI::Range(1, hi); }
// 0 ..= hi.
inline CLI::Range non_negative(int hi = std::numeric_limits<int>::max()) {
  return CLI::Range(0, hi);
}
inline CLI::Range threads_range() { return CLI::Range(1, kMaxThreads); }
inline CLI::Range unit_interval() { return CLI::Range(0.0, 1.0); }

// A head dimension the Hadamard transform takes: a power of two in [16, 256].
inline CLI::Validator head_dim_check() {
  return CLI::Validator(
      [](std::string& s) -> std::string {
        int d = 0;
        const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), d);
        if (ec != std::errc() || end != s.data() + s.size() || d < 16 || d > 256 ||
            !std::has_single_bit(static_cast<unsigned>(d)))
          return "must be a power of two in [16, 256], got " + s;
        return {};
      },
      "POW2 in [16, 256]");
}

}  // namespace adamas::cli
