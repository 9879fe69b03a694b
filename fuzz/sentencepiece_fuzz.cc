// The shipped SentencePiece model (models/adamas-tiny-8k/tokenizer.model, byte fallback) on the
// input twice: as text (encode, decode, stream the ids) and as ids (each 4 bytes a little-endian
// uint32, taken modulo the vocabulary: control, unknown and byte pieces in any order) decoded and
// streamed. decode must be valid UTF-8 and streaming must write exactly decode's text.
#include <cstring>

#include "adamas/model/tokenizer.h"
#include "fuzz_util.h"
#include "tokenizer_checks.h"

namespace {

using namespace adamas::model;
using adamas::fuzz::must;
using adamas::fuzz::valid_utf8;

const Tokenizer& tokenizer() {
  static const std::unique_ptr<Tokenizer> tok =
      load_sentencepiece(std::string(ADAMAS_SOURCE_DIR) + "/models/adamas-tiny-8k/tokenizer.model");
  return *tok;
}

void decode_and_stream(const Tokenizer& tok, const std::vector<int32_t>& ids) {
  std::string with, without;
  must([&] { with = tok.decode(ids, /*skip_special=*/false); }, "decode");
  FUZZ_CHECK(valid_utf8(with), "decode(skip_special=false) is not valid UTF-8");
  must([&] { without = tok.decode(ids); }, "decode");
  FUZZ_CHECK(valid_utf8(without), "decode is not valid UTF-8");
  must([&] { (void)tok.decode_bytes(ids); }, "decode_bytes");

  const std::string streamed = adamas::fuzz::check_streaming(tok, ids);
  FUZZ_CHECK(streamed == without,
             "streamed text != decode:\n  streamed: " + streamed + "\n  decode:   " + without);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const Tokenizer& tok = tokenizer();
  const int n = tok.vocab_size();

  // As text.
  std::vector<int32_t> ids;
  must([&] { ids = tok.encode(adamas::fuzz::as_text(data, size)); }, "encode");
  for (int32_t id : ids) FUZZ_CHECK(id >= 0 && id < n, "encode gave an id out of range");
  decode_and_stream(tok, ids);

  // As ids.
  ids.clear();
  for (size_t i = 0; i + 4 <= size; i += 4) {
    uint32_t v;
    std::memcpy(&v, data + i, 4);
    ids.push_back(static_cast<int32_t>(v % static_cast<uint32_t>(n)));
  }
  decode_and_stream(tok, ids);
  return 0;
}
