// LongChat-style passkey prompts, byte-exact with the templates the shipped model was trained and
// evaluated on (tools/model/tasks.py, models/adamas-tiny-8k/README.md):
//   PREFIX + FILLER × a + NEEDLE(key) + FILLER × (n − a) + QUESTION,  answer " " + key.
// Multi-key prompts (K key–value needles, one queried, the others distractors):
//   MK_PREFIX + FILLER × p_1 + MK_NEEDLE(k_1, v_1) + … + FILLER × (n − p_K) + MK_QUESTION(k_q),
//   answer " " + v_q.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "adamas/model/tokenizer.h"

namespace adamas::cli {

std::string passkey_text(int filler_lines, int lines_before_needle, int key);

struct PasskeyPrompt {
  std::vector<int32_t> ids;  // BOS + the text's tokens
  int filler_lines = 0;      // n
  int needle_line = 0;       // a: filler lines before the needle
  int key = 0;
  std::string text;  // the prompt as text (ids = BOS + its tokens)
};

// The longest prompt whose tokens plus `answer_tokens` fit `context`, the needle after
// round(depth · n) filler lines. Throws adamas::Error when even n = 0 does not fit.
PasskeyPrompt make_passkey_prompt(const model::Tokenizer& tok, int context, double depth, int key,
                                  int answer_tokens = 8);

// Multi-key: `positions` non-decreasing filler-line counts before each needle (≤ n).
std::string multikey_text(int filler_lines, const std::vector<int>& positions,
                          const std::vector<int>& keys, const std::vector<int>& values,
                          int queried);

// The longest multi-key prompt of `keys.size()` needles that fits `context` with `answer_tokens`;
// the queried needle (index `queried` of keys/values) after round(depth · n) filler lines, every
// other needle after a line drawn from `rng` (uniform in 0..n). `key` in the result is the
// queried value (the answer). Throws adamas::Error when even n = 0 does not fit.
PasskeyPrompt make_multikey_prompt(const model::Tokenizer& tok, int context, double depth,
                                   const std::vector<int>& keys, const std::vector<int>& values,
                                   int queried, std::mt19937& rng, int answer_tokens = 8);

}  // namespace adamas::cli
