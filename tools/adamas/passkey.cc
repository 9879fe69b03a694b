#include "passkey.h"

#include <fmt/format.h>

#include <cmath>

#include "adamas/common/error.h"

namespace adamas::cli {
namespace {

constexpr const char* kPrefix =
    "There is an important pass key hidden inside a lot of irrelevant text. Find it and memorize "
    "it. I will quiz you about the pass key at the end.\n";
constexpr const char* kFiller =
    "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again.\n";
constexpr const char* kQuestion = "What is the pass key? The pass key is";

std::string repeat(const char* s, int n) {
  std::string out;
  for (int i = 0; i < n; ++i) out += s;
  return out;
}

}  // namespace

std::string passkey_text(int n, int a, int key) {
  return kPrefix + repeat(kFiller, a) +
         fmt::format("The pass key is {0}. Remember it. {0} is the pass key.\n", key) +
         repeat(kFiller, n - a) + kQuestion;
}

PasskeyPrompt make_passkey_prompt(const model::Tokenizer& tok, int context, double depth, int key,
                                  int answer_tokens) {
  auto build = [&](int n) {
    PasskeyPrompt p;
    p.filler_lines = n;
    p.needle_line = static_cast<int>(std::nearbyint(depth * n));  // half to even, like Python
    p.key = key;
    p.ids = tok.encode_prompt(passkey_text(n, p.needle_line, key));
    return p;
  };
  const int empty = static_cast<int>(build(0).ids.size());
  const int per_line = static_cast<int>(build(1).ids.size()) - empty;
  if (empty + answer_tokens > context) {
    throw Error(fmt::format("a passkey prompt needs at least {} tokens, the context is {}",
                            empty + answer_tokens, context));
  }
  int n = std::max(0, (context - answer_tokens - empty) / std::max(per_line, 1));
  PasskeyPrompt p = build(n);
  while (n > 0 && static_cast<int>(p.ids.size()) + answer_tokens > context) p = build(--n);
  return p;
}

}  // namespace adamas::cli
