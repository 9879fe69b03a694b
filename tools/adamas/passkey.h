// LongChat-style passkey prompts, byte-exact with the templates the shipped model was trained and
// evaluated on (tools/model/tasks.py, models/adamas-tiny-8k/README.md):
//   PREFIX + FILLER × a + NEEDLE(key) + FILLER × (n − a) + QUESTION,  answer " " + key.
#pragma once

#include <cstdint>
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
};

// The longest prompt whose tokens plus `answer_tokens` fit `context`, the needle after
// round(depth · n) filler lines. Throws adamas::Error when even n = 0 does not fit.
PasskeyPrompt make_passkey_prompt(const model::Tokenizer& tok, int context, double depth, int key,
                                  int answer_tokens = 8);

}  // namespace adamas::cli
