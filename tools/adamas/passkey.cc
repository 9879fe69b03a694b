#include "passkey.h"

#include <fmt/format.h>

#include <algorithm>
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
constexpr const char* kMkPrefix =
    "Some keys are hidden inside a lot of irrelevant text, each with a value. Memorize them. I "
    "will ask for the value of one key at the end.\n";

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

std::string multikey_text(int n, const std::vector<int>& positions, const std::vector<int>& keys,
                          const std::vector<int>& values, int queried) {
  std::string s = kMkPrefix;
  int prev = 0;
  for (size_t i = 0; i < positions.size(); ++i) {
    s += repeat(kFiller, positions[i] - prev) +
         fmt::format("The value of key {} is {}.\n", keys[i], values[i]);
    prev = positions[i];
  }
  return s + repeat(kFiller, n - prev) +
         fmt::format("What is the value of key {0}? The value of key {0} is", keys[queried]);
}

PasskeyPrompt make_multikey_prompt(const model::Tokenizer& tok, int context, double depth,
                                   const std::vector<int>& keys, const std::vector<int>& values,
                                   int queried, std::mt19937& rng, int answer_tokens) {
  const int K = static_cast<int>(keys.size());
  // Distractor lines as fractions of n, drawn once, so that shrinking n keeps the layout.
  std::vector<double> at(K);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  for (int i = 0; i < K; ++i) at[i] = i == queried ? depth : u(rng);
  auto build = [&](int n) {
    // Needles in line order; a tie keeps the index order.
    std::vector<int> order(K);
    for (int i = 0; i < K; ++i) order[i] = i;
    std::vector<int> line(K);
    for (int i = 0; i < K; ++i) line[i] = static_cast<int>(std::nearbyint(at[i] * n));
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return line[a] < line[b]; });
    std::vector<int> pos, ks, vs;
    int q = 0;
    for (int i : order) {
      if (i == queried) q = static_cast<int>(pos.size());
      pos.push_back(line[i]);
      ks.push_back(keys[i]);
      vs.push_back(values[i]);
    }
    PasskeyPrompt p;
    p.filler_lines = n;
    p.needle_line = line[queried];
    p.key = values[queried];
    p.text = multikey_text(n, pos, ks, vs, q);
    p.ids = tok.encode_prompt(p.text);
    return p;
  };
  const int empty = static_cast<int>(build(0).ids.size());
  const int per_line = static_cast<int>(build(1).ids.size()) - empty;
  if (empty + answer_tokens > context) {
    throw Error(fmt::format("a {}-key prompt needs at least {} tokens, the context is {}", K,
                            empty + answer_tokens, context));
  }
  int n = std::max(0, (context - answer_tokens - empty) / std::max(per_line, 1));
  PasskeyPrompt p = build(n);
  while (n > 0 && static_cast<int>(p.ids.size()) + answer_tokens > context) p = build(--n);
  return p;
}

PasskeyPrompt make_passkey_prompt(const model::Tokenizer& tok, int context, double depth, int key,
                                  int answer_tokens) {
  auto build = [&](int n) {
    PasskeyPrompt p;
    p.filler_lines = n;
    p.needle_line = static_cast<int>(std::nearbyint(depth * n));  // half to even, like Python
    p.key = key;
    p.text = passkey_text(n, p.needle_line, key);
    p.ids = tok.encode_prompt(p.text);
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
