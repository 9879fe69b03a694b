// The input as tokenizer.json: parse_bpe on the text, and load_tokenizer on a directory holding it
// beside a fixed tokenizer_config.json (BOS/EOS as AddedToken forms; tokenizers that lack those
// tokens are rightly refused there). A tokenizer that loads encodes a fixed text (ids in range),
// decodes the ids (valid UTF-8), decodes its whole vocabulary and streams the ids.
#include <algorithm>

#include "adamas/model/tokenizer.h"
#include "fuzz_util.h"

namespace {

namespace fs = std::filesystem;
using namespace adamas::model;
using adamas::fuzz::valid_utf8;

const std::string kTexts[] = {
    "Hello, world! It's 2024: café naïve 日本語 🤖 <|begin_of_text|>x<|eot_id|>\r\n  end ",
    std::string("bytes \xff\xc3( and \xe2\x82", 15),
};

void exercise(const Tokenizer& tok) {
  const int n = tok.vocab_size();
  FUZZ_CHECK(n >= 0, "vocab_size");
  (void)tok.describe();
  FUZZ_CHECK(tok.bos_id() == -1 || (tok.bos_id() >= 0 && tok.bos_id() < n), "bos id");
  FUZZ_CHECK(tok.eos_id() == -1 || (tok.eos_id() >= 0 && tok.eos_id() < n), "eos id");
  for (const std::string& text : kTexts) {
    std::vector<int32_t> ids;
    if (!adamas::fuzz::accepts([&] { ids = tok.encode_prompt(text); })) continue;
    for (int32_t id : ids) FUZZ_CHECK(id >= 0 && id < n, "encode gave an id out of range");
    for (bool skip : {true, false}) {
      std::string out;
      adamas::fuzz::accepts([&] { out = tok.decode(ids, skip); });
      FUZZ_CHECK(valid_utf8(out), "decode is not valid UTF-8");
      adamas::fuzz::accepts([&] { (void)tok.decode_bytes(ids, skip); });
    }
    adamas::fuzz::accepts([&] {
      TokenStreamer st(tok, std::span<const int32_t>(ids).first(std::min<size_t>(ids.size(), 2)));
      for (int32_t id : ids) FUZZ_CHECK(valid_utf8(st.push(id)), "streamed text is not UTF-8");
      FUZZ_CHECK(valid_utf8(st.finish()), "streamed text is not UTF-8");
    });
  }
  // Every token (the first 512) on its own and all together.
  std::vector<int32_t> all;
  for (int32_t id = 0; id < std::min(n, 512); ++id) all.push_back(id);
  std::string out;
  adamas::fuzz::accepts([&] { out = tok.decode(all, false); });
  FUZZ_CHECK(valid_utf8(out), "decode of the vocabulary is not valid UTF-8");
  // Ids out of range are refused.
  for (int32_t bad : {-1, n, INT32_MAX, INT32_MIN}) {
    const int32_t one[] = {bad};
    FUZZ_CHECK(!adamas::fuzz::accepts([&] { (void)tok.decode(one); }), "bad id decoded");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const fs::path dir = [] {
    const fs::path d = adamas::fuzz::scratch_dir() / "model";
    fs::create_directories(d);
    adamas::fuzz::write_file(d / "tokenizer_config.json", R"({
  "add_bos_token": true,
  "add_eos_token": false,
  "bos_token": {"content": "<|begin_of_text|>", "lstrip": false, "normalized": false},
  "eos_token": "<|eot_id|>",
  "tokenizer_class": "PreTrainedTokenizerFast"
})");
    return d;
  }();
  const std::string_view text = adamas::fuzz::as_text(data, size);
  adamas::fuzz::write_file(dir / "tokenizer.json", text);

  std::unique_ptr<Tokenizer> parsed;
  adamas::fuzz::accepts([&] { parsed = parse_bpe(text, "fuzz.json"); });
  std::unique_ptr<Tokenizer> loaded;
  adamas::fuzz::accepts([&] { loaded = load_tokenizer(dir); });
  if (loaded) {
    FUZZ_CHECK(parsed != nullptr, "load_tokenizer accepted what parse_bpe rejected");
    FUZZ_CHECK(loaded->vocab_size() == parsed->vocab_size(), "vocab sizes differ");
    FUZZ_CHECK(loaded->add_bos() && !loaded->add_eos(), "tokenizer_config.json not applied");
    exercise(*loaded);
  } else if (parsed) {
    exercise(*parsed);
  }
  return 0;
}
