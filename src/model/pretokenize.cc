// The byte-level BPE split patterns of tokenizer.h, as hand-written matchers that follow the
// regexes' ordered alternation and backtracking exactly (each branch commented with its regex).
#include <unicode/uchar.h>

#include <cstdint>
#include <vector>

#include "adamas/model/tokenizer.h"

namespace adamas::model {
namespace {

struct Cp {
  uint32_t c;
  size_t off;  // byte offset of the code point
};

// UTF-8 → code points with byte offsets; a malformed byte becomes its own code point 0xFFFD
// (an "other" character), so no byte is lost.
std::vector<Cp> decode_utf8(std::string_view s) {
  std::vector<Cp> out;
  size_t i = 0;
  while (i < s.size()) {
    const auto b = static_cast<unsigned char>(s[i]);
    int len = b < 0x80 ? 1 : (b >> 5) == 6 ? 2 : (b >> 4) == 14 ? 3 : (b >> 3) == 30 ? 4 : 0;
    uint32_t c = len == 1 ? b : len == 2 ? b & 0x1f : len == 3 ? b & 0x0f : b & 0x07;
    bool ok = len > 0 && i + len <= s.size();
    for (int k = 1; ok && k < len; ++k) {
      const auto cb = static_cast<unsigned char>(s[i + k]);
      ok = (cb & 0xc0) == 0x80;
      c = (c << 6) | (cb & 0x3f);
    }
    if (!ok) {
      out.push_back({0xFFFD, i});
      ++i;
      continue;
    }
    out.push_back({c, i});
    i += len;
  }
  return out;
}

bool is_letter(uint32_t c) { return (U_GET_GC_MASK(static_cast<UChar32>(c)) & U_GC_L_MASK) != 0; }
bool is_number(uint32_t c) { return (U_GET_GC_MASK(static_cast<UChar32>(c)) & U_GC_N_MASK) != 0; }
bool is_space(uint32_t c) { return u_isUWhiteSpace(static_cast<UChar32>(c)) != 0; }
bool is_crlf(uint32_t c) { return c == '\r' || c == '\n'; }
bool is_other(uint32_t c) { return !is_space(c) && !is_letter(c) && !is_number(c); }
uint32_t lower_ascii(uint32_t c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }

class Splitter {
 public:
  Splitter(const std::vector<Cp>& cps, SplitPattern p) : cp_(cps), n_(cps.size()), p_(p) {}

  // End (code point index) of the match at i; every position matches some branch.
  size_t match(size_t i) const {
    if (size_t e = contraction(i)) return e;
    if (p_ == SplitPattern::kGpt2) {
      size_t j = i + (at(i) == ' ' ? 1 : 0);  //  ?\p{L}+ | ?\p{N}+ | ?[^\s\p{L}\p{N}]+
      for (auto cls : {is_letter, is_number, is_other})
        if (j < n_ && cls(cp_[j].c)) return run(j, cls);
      if (j != i)  // the optional space backtracked: the branches without it
        for (auto cls : {is_letter, is_number, is_other})
          if (cls(cp_[i].c)) return run(i, cls);
    } else {
      // [^\r\n\p{L}\p{N}]?\p{L}+
      const uint32_t c = cp_[i].c;
      if (!is_crlf(c) && !is_letter(c) && !is_number(c) && i + 1 < n_ && is_letter(cp_[i + 1].c))
        return run(i + 1, is_letter);
      if (is_letter(c)) return run(i, is_letter);
      // \p{N}{1,3}  or  \p{N}
      if (is_number(c)) {
        const size_t limit = p_ == SplitPattern::kLlama3 ? 3 : 1;
        size_t e = i;
        while (e < n_ && e - i < limit && is_number(cp_[e].c)) ++e;
        return e;
      }
      //  ?[^\s\p{L}\p{N}]+[\r\n]*
      size_t j = i + (c == ' ' && i + 1 < n_ && is_other(cp_[i + 1].c) ? 1 : 0);
      if (is_other(cp_[j].c)) {
        size_t e = run(j, is_other);
        while (e < n_ && is_crlf(cp_[e].c)) ++e;
        return e;
      }
      // \s*[\r\n]+ : up to the last CR/LF of the whitespace run
      const size_t ws_end = run(i, is_space);
      for (size_t k = ws_end; k > i; --k)
        if (is_crlf(cp_[k - 1].c)) return k;
    }
    // \s+(?!\S) then \s+
    const size_t ws_end = run(i, is_space);
    if (ws_end > i) {
      if (ws_end == n_ || ws_end - i == 1) return ws_end;
      return ws_end - 1;
    }
    return i + 1;  // unreachable for valid classes; keeps progress guaranteed
  }

 private:
  uint32_t at(size_t i) const { return i < n_ ? cp_[i].c : 0; }
  size_t run(size_t i, bool (*cls)(uint32_t)) const {
    while (i < n_ && cls(cp_[i].c)) ++i;
    return i;
  }
  // 's|'t|'re|'ve|'m|'ll|'d, case-insensitive except in GPT-2's pattern. Returns 0: no match.
  size_t contraction(size_t i) const {
    if (at(i) != '\'') return 0;
    auto low = [&](size_t k) { return p_ == SplitPattern::kGpt2 ? at(k) : lower_ascii(at(k)); };
    const uint32_t a = low(i + 1), b = low(i + 2);
    if (a == 's' || a == 't' || a == 'm' || a == 'd') return i + 2;
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return i + 3;
    return 0;
  }

  const std::vector<Cp>& cp_;
  size_t n_;
  SplitPattern p_;
};

}  // namespace

std::vector<std::string_view> pretokenize(std::string_view text, SplitPattern pattern) {
  const std::vector<Cp> cps = decode_utf8(text);
  Splitter sp(cps, pattern);
  std::vector<std::string_view> out;
  for (size_t i = 0; i < cps.size();) {
    const size_t e = sp.match(i);
    const size_t b0 = cps[i].off, b1 = e < cps.size() ? cps[e].off : text.size();
    out.push_back(text.substr(b0, b1 - b0));
    i = e;
  }
  return out;
}

}  // namespace adamas::model
