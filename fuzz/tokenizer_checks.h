// Streaming checks shared by the tokenizer fuzz targets (bpe_encode_fuzz, sentencepiece_fuzz).
#pragma once

#include <span>
#include <string>
#include <vector>

#include "adamas/model/tokenizer.h"
#include "fuzz_util.h"

namespace adamas::fuzz {

// Streams `ids` through a TokenStreamer and returns the text written: every piece valid UTF-8,
// a second finish() writes nothing. Then streams the second half after the first as context:
// valid UTF-8 again. Callers compare the returned text with decode(ids).
inline std::string check_streaming(const model::Tokenizer& tok, const std::vector<int32_t>& ids) {
  std::string streamed;
  must(
      [&] {
        model::TokenStreamer st(tok);
        for (int32_t id : ids) {
          const std::string piece = st.push(id);
          FUZZ_CHECK(valid_utf8(piece), "streamed piece is not valid UTF-8");
          streamed += piece;
        }
        streamed += st.finish();
        FUZZ_CHECK(st.finish().empty(), "a second finish() wrote text");
      },
      "streaming");
  if (ids.size() >= 2) {
    const size_t k = ids.size() / 2;
    must(
        [&] {
          model::TokenStreamer st(tok, std::span<const int32_t>(ids).first(k));
          std::string out;
          for (size_t i = k; i < ids.size(); ++i) out += st.push(ids[i]);
          out += st.finish();
          FUZZ_CHECK(valid_utf8(out), "streamed text after a context is not valid UTF-8");
        },
        "streaming after a context");
  }
  return streamed;
}

}  // namespace adamas::fuzz
