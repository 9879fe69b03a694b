// The input as text for a fixed, small but realistic byte-level BPE tokenizer
// (fuzz/data/tiny_bpe_tokenizer.json, made by fuzz/make_seeds.py: Llama-3 split pattern, 256 byte
// tokens, merges learned from English text, Llama-3's special tokens). Checks what byte-level BPE
// guarantees: encoding never fails and gives ids in range; the ids' bytes are the text's bytes
// (so decode(encode(text)) == text for valid UTF-8, and the U+FFFD repair of it otherwise); decode
// is valid UTF-8; streaming the ids writes exactly decode's text; the pre-tokenizer's pieces
// (all three patterns) are non-empty and concatenate to the text.
#include <algorithm>

#include "adamas/model/tokenizer.h"
#include "fuzz_util.h"
#include "tokenizer_checks.h"

namespace {

using namespace adamas::model;
using adamas::fuzz::must;
using adamas::fuzz::valid_utf8;

const Tokenizer& tokenizer() {
  static const std::unique_ptr<Tokenizer> tok =
      load_bpe(std::string(ADAMAS_FUZZ_DATA) + "/tiny_bpe_tokenizer.json");
  return *tok;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const Tokenizer& tok = tokenizer();
  const std::string_view text = adamas::fuzz::as_text(data, size);
  const bool utf8 = valid_utf8(text);

  for (auto p : {SplitPattern::kLlama3, SplitPattern::kQwen2, SplitPattern::kGpt2}) {
    std::string joined;
    for (std::string_view piece : pretokenize(text, p)) {
      FUZZ_CHECK(!piece.empty(), "empty pre-tokenizer piece");
      joined += piece;
    }
    FUZZ_CHECK(joined == text, "pre-tokenizer pieces do not concatenate to the text");
  }

  std::vector<int32_t> ids;
  must([&] { ids = tok.encode(text); }, "encode");
  for (int32_t id : ids) FUZZ_CHECK(id >= 0 && id < tok.vocab_size(), "id out of range");
  FUZZ_CHECK(ids.size() <= text.size(), "more ids than bytes");

  std::string bytes, raw, clean;
  must([&] { bytes = tok.decode_bytes(ids, /*skip_special=*/false); }, "decode_bytes");
  FUZZ_CHECK(bytes == text, "decode_bytes(encode(text)) != text");
  must([&] { raw = tok.decode(ids, /*skip_special=*/false); }, "decode");
  FUZZ_CHECK(valid_utf8(raw), "decode is not valid UTF-8");
  if (utf8) FUZZ_CHECK(raw == text, "decode(encode(text)) != text for valid UTF-8");
  FUZZ_CHECK(raw == utf8_replace_invalid(text), "decode != the U+FFFD repair of the text");
  must([&] { clean = tok.decode(ids); }, "decode (skip special)");
  FUZZ_CHECK(valid_utf8(clean), "decode(skip_special) is not valid UTF-8");

  // Streaming writes decode's text: only whole characters, U+FFFD where decode has one; after a
  // context too.
  FUZZ_CHECK(adamas::fuzz::check_streaming(tok, ids) == clean, "streamed text != decode");

  // Prompts: BOS in front when the tokenizer adds it, then the same ids.
  std::vector<int32_t> prompt;
  must([&] { prompt = tok.encode_prompt(text); }, "encode_prompt");
  const size_t bos = tok.add_bos() ? 1 : 0;
  FUZZ_CHECK(prompt.size() == ids.size() + bos + (tok.add_eos() ? 1 : 0), "prompt length");
  FUZZ_CHECK(std::equal(ids.begin(), ids.end(), prompt.begin() + bos), "prompt ids");
  return 0;
}
