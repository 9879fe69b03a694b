// Shared pieces of the fuzz targets: a per-process scratch directory for APIs that only take a
// path, file writing, an independent UTF-8 validator and a check that aborts (libFuzzer reports
// an abort as a crash and keeps the input).
//
// Conventions of every target: adamas::Error is an expected rejection of a bad input (caught);
// any other exception, a failed FUZZ_CHECK, a crash, a sanitizer report or a leak is a finding.
#pragma once

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

#include "adamas/common/error.h"

namespace adamas::fuzz {

[[noreturn]] inline void fail(const char* file, int line, const char* what, std::string_view msg) {
  std::fprintf(stderr, "\n%s:%d: FUZZ_CHECK failed: %s\n%.*s\n", file, line, what,
               static_cast<int>(msg.size()), msg.data());
  std::abort();
}

#define FUZZ_CHECK(cond, msg)                                                       \
  do {                                                                              \
    if (!(cond)) ::adamas::fuzz::fail(__FILE__, __LINE__, #cond, std::string(msg)); \
  } while (0)

// Runs body(); adamas::Error is an accepted outcome (returns false), any other exception aborts.
template <class F>
bool accepts(F&& body) {
  try {
    body();
    return true;
  } catch (const adamas::Error&) {
    return false;
  } catch (const std::exception& e) {
    fail(__FILE__, __LINE__, "an exception other than adamas::Error", e.what());
  } catch (...) {
    fail(__FILE__, __LINE__, "an exception other than adamas::Error", "(not a std::exception)");
  }
}

// A directory private to this process, removed at normal exit: in $ADAMAS_FUZZ_TMPDIR, else in
// /dev/shm (memory: rewriting a file per input on a disk file system can cost a millisecond, as
// ext4 flushes a truncated file on close), else in $TMPDIR or /tmp.
inline const std::filesystem::path& scratch_dir() {
  static const std::filesystem::path dir = [] {
    const char* env = std::getenv("ADAMAS_FUZZ_TMPDIR");
    const char* tmp = std::getenv("TMPDIR");
    std::string base = env && *env                       ? env
                       : ::access("/dev/shm", W_OK) == 0 ? "/dev/shm"
                       : tmp && *tmp                     ? tmp
                                                         : "/tmp";
    std::string tmpl = base + "/adamas-fuzz-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) {
      std::perror("mkdtemp");
      std::abort();
    }
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(scratch_dir(), ec);
    });
    return std::filesystem::path(tmpl);
  }();
  return dir;
}

inline void write_file(const std::filesystem::path& path, std::string_view bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  out.close();
  if (!out) {
    std::fprintf(stderr, "cannot write %s\n", path.c_str());
    std::abort();
  }
}

inline std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "cannot read %s\n", path.c_str());
    std::abort();
  }
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Well-formed UTF-8 (Unicode table 3-7), written independently of the library's own decoder.
inline bool valid_utf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t n;
    unsigned lo = 0x80, hi = 0xBF;
    if (c < 0x80) {
      ++i;
      continue;
    } else if (c >= 0xC2 && c <= 0xDF) {
      n = 1;
    } else if (c == 0xE0) {
      n = 2, lo = 0xA0;
    } else if (c == 0xED) {
      n = 2, hi = 0x9F;
    } else if (c >= 0xE1 && c <= 0xEF) {
      n = 2;
    } else if (c == 0xF0) {
      n = 3, lo = 0x90;
    } else if (c == 0xF4) {
      n = 3, hi = 0x8F;
    } else if (c >= 0xF1 && c <= 0xF3) {
      n = 3;
    } else {
      return false;
    }
    if (i + n >= s.size()) return false;  // runs past the end
    for (size_t k = 1; k <= n; ++k) {
      const auto d = static_cast<unsigned char>(s[i + k]);
      if (d < lo || d > hi) return false;
      lo = 0x80, hi = 0xBF;
    }
    i += n + 1;
  }
  return true;
}

inline std::string_view as_text(const uint8_t* data, size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

// body() must not be refused: an input the API promises to take (a text to encode, ids to decode).
template <class F>
void must(F&& body, const char* what) {
  FUZZ_CHECK(accepts(body), std::string(what) + " threw adamas::Error");
}

}  // namespace adamas::fuzz
