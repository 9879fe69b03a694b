// Internal: a nesting limit for the JSON of model files (safetensors headers, the shard index,
// config.json, generation_config.json, tokenizer.json, tokenizer_config.json).
//
// nlohmann parses iteratively, but copying a value, comparing and dump() (error messages quote
// the offending value) recurse once per level: a 200 KB file of '[' overflowed the stack (seen
// with fuzz/safetensors_fuzz on a crafted input) instead of being refused. Real files nest under 10
// levels; serde_json, which Hugging Face's safetensors and tokenizers parse with, refuses more than
// 128.
#pragma once

#include <fmt/format.h>

#include <algorithm>
#include <cstddef>
#include <nlohmann/json.hpp>
#include <string_view>

#include "adamas/common/error.h"

namespace adamas::model {

inline constexpr size_t kMaxJsonDepth = 128;

// The deepest nesting of arrays and objects in `text` (brackets inside strings do not count).
// A pre-check only: the text may still be invalid JSON, which the parser reports.
inline size_t json_depth(std::string_view text) {
  size_t depth = 0, deepest = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\')
        ++i;  // the escaped character cannot end the string
      else if (c == '"')
        in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      deepest = std::max(deepest, ++depth);
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return deepest;
}

// `text` parsed as a JSON object, or adamas::Error naming `source` ("not valid JSON: ...",
// "nested deeper than ...", "expected a JSON object").
inline nlohmann::json parse_json_object(std::string_view text, std::string_view source) {
  if (json_depth(text) > kMaxJsonDepth)
    throw Error(
        fmt::format("{}: not valid JSON: nested deeper than {} levels", source, kMaxJsonDepth));
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw Error(fmt::format("{}: not valid JSON: {}", source, e.what()));
  }
  if (!j.is_object()) throw Error(fmt::format("{}: expected a JSON object", source));
  return j;
}

}  // namespace adamas::model
