// Tokenizers: the hand-written split patterns against hand-derived splits, byte-level BPE and
// SentencePiece round trips on awkward text, special tokens, NFC, streaming (whole characters
// only, U+FFFD for invalid bytes), tokenizer_config.json's BOS/EOS settings, the vocabulary size
// check against config.json; and, when the Hugging Face reference files are present, our BPE ids
// against the tokenizers library's.
#include "adamas/model/tokenizer.h"

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <nlohmann/json.hpp>

#include "adamas/model/safetensors.h"
#include "model_test_util.h"

namespace adamas::model::test {
namespace {

using Pieces = std::vector<std::string>;

Pieces split(std::string_view s, SplitPattern p) {
  Pieces out;
  for (auto v : pretokenize(s, p)) out.emplace_back(v);
  return out;
}

const std::vector<std::string> kAwkward = {
    "Hello, world!",
    "  multiple   spaces\t\ttabs\n\n\nnewlines  ",
    "digits 1234567 3.14159 1,000,000 and 42nd",
    "Unicode: café naïve Ünïcödé — “quotes” 日本語のテキスト 🤖🚀 emoji",
    "contractions: I'm you're we've they'll she'd IT'S O'Neil",
    "mixed\r\nCRLF\rCR \n \n  end",
    " leading space and trailing ",
    "\xF0\x9F\xA4\x96\xF0\x9F\x9A\x80",
};

TEST(Pretokenize, Llama3Pattern) {
  const auto P = SplitPattern::kLlama3;
  EXPECT_EQ(split("Hello world", P), (Pieces{"Hello", " world"}));
  EXPECT_EQ(split("I'm 12345 ok", P), (Pieces{"I", "'m", " ", "123", "45", " ok"}));
  EXPECT_EQ(split("a  \n\n b", P), (Pieces{"a", "  \n\n", " b"}));
  EXPECT_EQ(split("x   y", P), (Pieces{"x", "  ", " y"}));
  EXPECT_EQ(split("foo!!\n\nbar", P), (Pieces{"foo", "!!\n\n", "bar"}));
  EXPECT_EQ(split("IT'S", P), (Pieces{"IT", "'S"}));
  EXPECT_EQ(split("$café 日本語🤖🚀", P), (Pieces{"$café", " 日本語", "🤖🚀"}));
  EXPECT_EQ(split("end  ", P), (Pieces{"end", "  "}));
  EXPECT_EQ(split("\tword", P), (Pieces{"\tword"}));
}

TEST(Pretokenize, Qwen2AndGpt2Patterns) {
  EXPECT_EQ(split("a 1234", SplitPattern::kQwen2), (Pieces{"a", " ", "1", "2", "3", "4"}));
  const auto G = SplitPattern::kGpt2;
  EXPECT_EQ(split("I'm 12345 ok", G), (Pieces{"I", "'m", " 12345", " ok"}));
  EXPECT_EQ(split("Hello   world!!", G), (Pieces{"Hello", "  ", " world", "!!"}));
  EXPECT_EQ(split("IT'S", G), (Pieces{"IT", "'", "S"}));  // GPT-2 is case-sensitive
}

TEST(Pretokenize, PiecesConcatenateToTheInputEvenForInvalidUtf8) {
  for (auto p : {SplitPattern::kLlama3, SplitPattern::kQwen2, SplitPattern::kGpt2})
    for (std::string s : kAwkward) {
      s += "\xff\xc3";  // invalid and truncated UTF-8
      std::string joined;
      for (auto v : pretokenize(s, p)) {
        EXPECT_FALSE(v.empty());
        joined += v;
      }
      EXPECT_EQ(joined, s);
    }
}

// GPT-2's byte → character map, rebuilt here independently of the tokenizer.
std::string byte_char(int b) {
  static std::vector<std::string> m = [] {
    std::vector<int> cp(256, -1);
    int n = 0;
    for (int c = 0; c < 256; ++c)
      if ((c >= 33 && c <= 126) || (c >= 161 && c <= 172) || (c >= 174)) cp[c] = c;
    for (int c = 0; c < 256; ++c)
      if (cp[c] < 0) cp[c] = 256 + n++;
    std::vector<std::string> out(256);
    for (int c = 0; c < 256; ++c) {
      const int u = cp[c];
      out[c] = u < 0x80 ? std::string(1, char(u))
                        : std::string{char(0xc0 | (u >> 6)), char(0x80 | (u & 0x3f))};
    }
    return out;
  }();
  return m[b];
}

std::string small_bpe_json(const std::string& pre, bool nfc) {
  nlohmann::json vocab;
  for (int b = 0; b < 256; ++b) vocab[byte_char(b)] = b;
  const std::string sp = byte_char(' ');
  const std::vector<std::pair<std::string, std::string>> merges = {
      {"t", "h"}, {sp, "th"}, {sp + "th", "e"}, {"i", "n"}, {"in", "g"}};
  nlohmann::json m = nlohmann::json::array();
  int id = 256;
  for (const auto& [a, b] : merges) {
    m.push_back(a + " " + b);
    vocab[a + b] = id++;
  }
  nlohmann::json j;
  j["model"] = {{"type", "BPE"}, {"vocab", vocab}, {"merges", m}, {"ignore_merges", false}};
  j["added_tokens"] = {{{"id", 300}, {"content", "<|eot|>"}, {"special", true}},
                       {{"id", 301}, {"content", "<extra>"}, {"special", false}}};
  j["normalizer"] = nfc ? nlohmann::json{{"type", "NFC"}} : nlohmann::json();
  j["pre_tokenizer"] = nlohmann::json::parse(pre);
  j["post_processor"] = {
      {"type", "TemplateProcessing"},
      {"single", {{{"SpecialToken", {{"id", "<|eot|>"}}}}, {{"Sequence", {{"id", "A"}}}}}}};
  return j.dump();
}

const char* kLlama3Pre =
    R"({"type":"Sequence","pretokenizers":[{"type":"Split","pattern":{"Regex":"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},"behavior":"Isolated","invert":false},{"type":"ByteLevel","add_prefix_space":false,"use_regex":false}]})";

TEST(BpeTokenizer, MergesSpecialTokensAndRoundTrips) {
  auto tok = parse_bpe(small_bpe_json(kLlama3Pre, false), "small.json");
  EXPECT_EQ(tok->vocab_size(), 302);
  EXPECT_EQ(tok->bos_id(), 300);
  EXPECT_EQ(tok->encode(" the"), std::vector<int32_t>{258});
  EXPECT_EQ(tok->encode("sing"), (std::vector<int32_t>{'s', 260}));
  EXPECT_EQ(tok->encode("a<|eot|>b<extra>"), (std::vector<int32_t>{'a', 300, 'b', 301}));
  EXPECT_EQ(tok->encode_prompt("a").front(), 300);
  for (const auto& s : kAwkward) EXPECT_EQ(tok->decode(tok->encode(s)), s) << s;
  EXPECT_EQ(tok->decode(tok->encode("x<|eot|>y")), "xy");
  EXPECT_EQ(tok->decode(tok->encode("x<|eot|>y"), false), "x<|eot|>y");
}

TEST(BpeTokenizer, NfcNormalizesBeforeSplitting) {
  auto tok = parse_bpe(small_bpe_json(kLlama3Pre, true), "nfc.json");
  EXPECT_EQ(tok->decode(tok->encode("e\xCC\x81")), "\xC3\xA9");  // e + U+0301 → é
}

TEST(BpeTokenizer, UnsupportedPiecesAreNamed) {
  auto bad = small_bpe_json(R"({"type":"Metaspace","replacement":"▁"})", false);
  EXPECT_THAT(test_error([&] { parse_bpe(bad, "meta.json"); }),
              AllOf(::testing::HasSubstr("meta.json"), ::testing::HasSubstr("Metaspace")));
  auto other = small_bpe_json(
      R"({"type":"Sequence","pretokenizers":[{"type":"Split","pattern":{"Regex":"\\w+"}},{"type":"ByteLevel"}]})",
      false);
  EXPECT_THAT(test_error([&] { parse_bpe(other, "x.json"); }),
              ::testing::HasSubstr("unsupported split pattern '\\w+'"));
}

// Token ids must be integers in [0, 2^24): 1e30 was converted to int32 with undefined behaviour
// (found by fuzz/tokenizer_json_fuzz), 4294967296 wrapped silently to 0 and 2.5 was truncated.
TEST(BpeTokenizer, TokenIdsMustBeIntegersInRange) {
  auto with_vocab_id = [](const std::string& id) {
    return test_error([&] {
      parse_bpe(R"({"model":{"type":"BPE","vocab":{"a":)" + id + R"(},"merges":[]}})", "t.json");
    });
  };
  for (const std::string bad : {"1e30", "-1e30", "4294967296", "2.5", "-1", "16777216", "\"7\""})
    EXPECT_THAT(with_vocab_id(bad),
                AllOf(::testing::HasSubstr("t.json: token 'a' has a bad id"),
                      ::testing::HasSubstr("expected an integer in [0, 16777216)")))
        << bad;
  auto j = nlohmann::json::parse(small_bpe_json(kLlama3Pre, false));
  j["added_tokens"][0]["id"] = 1e30;
  EXPECT_THAT(test_error([&] { parse_bpe(j.dump(), "t.json"); }),
              ::testing::HasSubstr("token '<|eot|>' has a bad id 1e+30"));
}

// An added token with empty content matched everywhere without advancing: encode never returned
// (found by reading the code, confirmed with fuzz/tokenizer_json_fuzz). Hugging Face ignores such
// tokens; so do we.
TEST(BpeTokenizer, EmptyAddedTokensAreIgnored) {
  auto j = nlohmann::json::parse(small_bpe_json(kLlama3Pre, false));
  j["added_tokens"].push_back({{"id", 302}, {"content", ""}, {"special", true}});
  auto tok = parse_bpe(j.dump(), "empty.json");
  auto plain = parse_bpe(small_bpe_json(kLlama3Pre, false), "small.json");
  EXPECT_EQ(tok->encode("a the<|eot|>b"), plain->encode("a the<|eot|>b"));
  EXPECT_EQ(tok->vocab_size(), 302);
}

// Deeper than 128 levels (serde_json's limit, which Hugging Face's tokenizers parse with) is
// refused: copies and dump() of such values recurse and overflowed the stack.
TEST(BpeTokenizer, DeeplyNestedJsonIsRefused) {
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  EXPECT_THAT(test_error([&] { parse_bpe(R"({"normalizer":)" + deep + "}", "t.json"); }),
              ::testing::HasSubstr("t.json: not valid JSON: nested deeper than 128 levels"));
  EXPECT_THAT(test_error([&] { parse_tokenizer_config(R"({"x":)" + deep + "}", "tc.json"); }),
              ::testing::HasSubstr("tc.json: not valid JSON: nested deeper than 128 levels"));
  // Brackets inside strings do not count.
  auto j = nlohmann::json::parse(small_bpe_json(kLlama3Pre, false));
  j["added_tokens"].push_back(
      {{"id", 302}, {"content", std::string("\"\\") + std::string(1000, '[')}});
  EXPECT_EQ(parse_bpe(j.dump(), "ok.json")->vocab_size(), 303);
}

TEST(TokenStreamer, EmitsCompleteCharactersOnly) {
  auto tok = parse_bpe(small_bpe_json(kLlama3Pre, false), "small.json");
  for (const auto& s : kAwkward) {
    const auto ids = tok->encode(s);
    TokenStreamer st(*tok);
    std::string out;
    for (int32_t id : ids) {
      const std::string piece = st.push(id);
      EXPECT_EQ(piece.find("\xEF\xBF\xBD"), std::string::npos);  // never half a character
      EXPECT_EQ(utf8_replace_invalid(piece), piece);             // always valid UTF-8
      out += piece;
    }
    out += st.finish();
    EXPECT_EQ(out, s);
  }
}

const std::string kEuro = "\xE2\x82\xAC", kReplacement = "\xEF\xBF\xBD";

TEST(Utf8, InvalidBytesBecomeOneReplacementPerMaximalSubpart) {
  // Python's bytes.decode("utf-8", errors="replace") on the same bytes.
  EXPECT_EQ(utf8_replace_invalid("a" + kEuro + "b"), "a" + kEuro + "b");
  EXPECT_EQ(utf8_replace_invalid("\xFF"), kReplacement);
  EXPECT_EQ(utf8_replace_invalid("\xE2\x82\x41"), kReplacement + "A");  // truncated: one
  EXPECT_EQ(utf8_replace_invalid("\xE2\x82"), kReplacement);
  EXPECT_EQ(utf8_replace_invalid("\xC0\xAF"), kReplacement + kReplacement);  // overlong
  EXPECT_EQ(utf8_replace_invalid("\xED\xA0\x80"), kReplacement + kReplacement + kReplacement);
  EXPECT_EQ(utf8_replace_invalid("\xF4\x90\x80\x80"),
            kReplacement + kReplacement + kReplacement + kReplacement);  // above U+10FFFF
  EXPECT_EQ(utf8_replace_invalid("\xF0\x9F\xA4\x96"), "\xF0\x9F\xA4\x96");
  EXPECT_EQ(utf8_complete_prefix("ab\xE2\x82"), 2u);
  EXPECT_EQ(utf8_complete_prefix("ab\xF0\x9F\xA4"), 2u);
  EXPECT_EQ(utf8_complete_prefix("ab\xFF"), 3u);      // invalid, not unfinished
  EXPECT_EQ(utf8_complete_prefix("ab\xE2\x41"), 4u);  // cut short by 'A': invalid
  EXPECT_EQ(utf8_complete_prefix("ab" + kEuro), 5u);
}

// Byte-level BPE: the byte tokens of small_bpe_json have id = byte value.
TEST(TokenStreamer, HoldsSplitCharactersAndReplacesInvalidBytesOfByteLevelTokens) {
  auto tok = parse_bpe(small_bpe_json(kLlama3Pre, false), "small.json");
  TokenStreamer st(*tok, tok->encode("price:"));
  EXPECT_EQ(st.push(' '), " ");
  EXPECT_EQ(st.push(0xE2), "");  // "€" = E2 82 AC over three tokens
  EXPECT_EQ(st.push(0x82), "");
  EXPECT_EQ(st.push(0xAC), kEuro);
  EXPECT_EQ(st.push(0xFF), kReplacement);  // can start no character: replaced at once
  EXPECT_EQ(st.push(0xE2), "");
  EXPECT_EQ(st.push('x'), kReplacement + "x");  // E2 cut short by 'x'
  // A generated U+FFFD is a character like any other, not held back.
  for (int32_t id : tok->encode(kReplacement + "!")) (void)st.push(id);
  EXPECT_EQ(st.push(0xF0), "");
  EXPECT_EQ(st.push(0x9F), "");
  EXPECT_EQ(st.finish(), kReplacement);  // unfinished at the end: one U+FFFD
  EXPECT_EQ(st.finish(), "");
  // The same bytes through decode (Hugging Face's ByteLevel decoder: from_utf8_lossy).
  const std::vector<int32_t> ids = {0xE2, 0x82, 0xAC, 0xFF, 0xE2, 'x', 0xF0, 0x9F};
  EXPECT_EQ(tok->decode(ids), kEuro + kReplacement + kReplacement + "x" + kReplacement);
  EXPECT_EQ(tok->decode_bytes(ids), "\xE2\x82\xAC\xFF\xE2x\xF0\x9F");
}

TEST(TokenStreamer, GeneratedReplacementCharacterIsWrittenAtOnce) {
  auto tok = parse_bpe(small_bpe_json(kLlama3Pre, false), "small.json");
  TokenStreamer st(*tok);
  std::string out;
  for (int32_t id : tok->encode("a" + kReplacement)) out += st.push(id);
  EXPECT_EQ(out, "a" + kReplacement);  // before finish()
  EXPECT_EQ(st.finish(), "");
}

// A checkpoint directory's tokenizer.json, tokenizer_config.json and config.json (the last two
// when not empty).
void bpe_dir(const TempDir& d, const std::string& tokenizer_config,
             const std::string& config = "") {
  write_text(d.path / "tokenizer.json", small_bpe_json(kLlama3Pre, false));
  if (!tokenizer_config.empty()) write_text(d.path / "tokenizer_config.json", tokenizer_config);
  if (!config.empty()) write_text(d.path / "config.json", config);
}

TEST(TokenizerConfig, ParsesStringAndAddedTokenForms) {
  const auto c = parse_tokenizer_config(
      R"({"add_bos_token": false, "add_eos_token": true,
          "bos_token": {"__type": "AddedToken", "content": "<s>", "lstrip": false},
          "eos_token": "</s>", "model_max_length": 8192})");
  EXPECT_EQ(c.add_bos_token, false);
  EXPECT_EQ(c.add_eos_token, true);
  EXPECT_EQ(c.bos_token, "<s>");
  EXPECT_EQ(c.eos_token, "</s>");
  const auto none = parse_tokenizer_config(R"({"bos_token": null})");
  EXPECT_FALSE(none.add_bos_token.has_value());
  EXPECT_FALSE(none.add_eos_token.has_value());
  EXPECT_EQ(none.bos_token, "");  // null: no BOS token
  EXPECT_FALSE(none.eos_token.has_value());
  EXPECT_THAT(test_error([] { parse_tokenizer_config(R"({"add_bos_token": "yes"})", "tc.json"); }),
              ::testing::HasSubstr("tc.json: add_bos_token must be true or false"));
  EXPECT_THAT(test_error([] { parse_tokenizer_config(R"({"eos_token": 2})", "tc.json"); }),
              ::testing::HasSubstr("tc.json: eos_token must be a string or an object"));
  EXPECT_THAT(test_error([] { parse_tokenizer_config("{", "tc.json"); }),
              ::testing::HasSubstr("tc.json: not valid JSON"));
}

TEST(TokenizerConfig, DecidesBosAndEosOfByteLevelPrompts) {
  {  // no tokenizer_config.json: BOS from the post-processor template, no EOS
    const TempDir d;
    bpe_dir(d, "");
    auto tok = load_tokenizer(d.path);
    EXPECT_EQ(tok->encode_prompt("a"), (std::vector<int32_t>{300, 'a'}));
    EXPECT_EQ(tok->eos_id(), -1);
  }
  {  // add_bos_token false wins over the template (as LlamaTokenizerFast)
    const TempDir d;
    bpe_dir(d, R"({"add_bos_token": false})");
    auto tok = load_tokenizer(d.path);
    EXPECT_FALSE(tok->add_bos());
    EXPECT_EQ(tok->bos_id(), 300);
    EXPECT_EQ(tok->encode_prompt("a"), (std::vector<int32_t>{'a'}));
  }
  {  // both, with the tokens named in either form
    const TempDir d;
    bpe_dir(d,
            R"({"add_bos_token": true, "add_eos_token": true,
                "bos_token": {"content": "<extra>", "special": true}, "eos_token": "<|eot|>"})");
    auto tok = load_tokenizer(d.path);
    EXPECT_EQ(tok->bos_id(), 301);
    EXPECT_EQ(tok->eos_id(), 300);
    EXPECT_EQ(tok->encode_prompt("a"), (std::vector<int32_t>{301, 'a', 300}));
    // generate --no-bos: BOS off whatever the config says; EOS stays.
    EXPECT_EQ(tok->encode_prompt("a", /*with_bos=*/false), (std::vector<int32_t>{'a', 300}));
    EXPECT_EQ(tok->encode("a"), (std::vector<int32_t>{'a'}));
    EXPECT_EQ(tok->decode(tok->encode_prompt("a")), "a");  // skip_special drops BOS and EOS
    EXPECT_THAT(tok->describe(), ::testing::HasSubstr("eos 300 added"));
  }
  {  // bos_token null: no BOS even with add_bos_token
    const TempDir d;
    bpe_dir(d, R"({"add_bos_token": true, "bos_token": null})");
    auto tok = load_tokenizer(d.path);
    EXPECT_EQ(tok->bos_id(), -1);
    EXPECT_EQ(tok->encode_prompt("a"), (std::vector<int32_t>{'a'}));
  }
  {
    const TempDir d;
    bpe_dir(d, R"({"eos_token": {"content": "</s>"}})");
    EXPECT_THAT(test_error([&] { load_tokenizer(d.path); }),
                AllOf(::testing::HasSubstr("tokenizer_config.json"),
                      ::testing::HasSubstr("eos_token '</s>' is not a token of the tokenizer")));
  }
}

TEST(VocabSize, TokenizerWithIdsBeyondTheModelFailsAtLoad) {
  auto tok = parse_bpe(small_bpe_json(kLlama3Pre, false), "small.json");  // ids 0..301
  EXPECT_NO_THROW(check_vocab_size(*tok, 302, "x"));
  EXPECT_NO_THROW(check_vocab_size(*tok, 320, "x"));  // padded embeddings are fine
  EXPECT_THAT(test_error([&] { check_vocab_size(*tok, 300, "ckpt"); }),
              AllOf(::testing::HasSubstr("ckpt: the tokenizer has 302 token ids (0..301)"),
                    ::testing::HasSubstr("the model's vocab_size is 300")));
  {
    const TempDir d;
    bpe_dir(d, "", R"({"model_type": "llama", "vocab_size": 256})");
    EXPECT_THAT(
        test_error([&] { load_tokenizer(d.path); }),
        AllOf(::testing::HasSubstr("tokenizer.json against"), ::testing::HasSubstr("config.json"),
              ::testing::HasSubstr("302 token ids"), ::testing::HasSubstr("vocab_size is 256")));
  }
  {
    const TempDir d;
    bpe_dir(d, "", R"({"model_type": "llama", "vocab_size": 302})");
    EXPECT_EQ(load_tokenizer(d.path)->vocab_size(), 302);
  }
  {  // a broken config.json is the model loader's to report
    const TempDir d;
    bpe_dir(d, "", "{not json");
    EXPECT_EQ(load_tokenizer(d.path)->vocab_size(), 302);
  }
  {  // so is a vocab_size that does not fit an int (it was wrapped: 2^32 + 1 read as 1)
    const TempDir d;
    bpe_dir(d, "", R"({"model_type": "llama", "vocab_size": 4294967297})");
    EXPECT_EQ(load_tokenizer(d.path)->vocab_size(), 302);
  }
}

class SentencePiece : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir;
    std::string corpus;
    for (int i = 0; i < 20; ++i)
      for (const auto& s : kAwkward) corpus += s.substr(0, s.find('\n')) + "\n";
    corpus += "the quick brown fox jumps over the lazy dog\n";
    write_text(dir_->path / "corpus.txt", corpus);
    const auto status = sentencepiece::SentencePieceTrainer::Train(
        "--input=" + (dir_->path / "corpus.txt").string() +
        " --model_prefix=" + (dir_->path / "sp").string() +
        " --model_type=bpe --vocab_size=400 --hard_vocab_limit=false --byte_fallback=true"
        " --character_coverage=1.0 --normalization_rule_name=identity"
        " --remove_extra_whitespaces=false --split_digits=true --minloglevel=2");
    ASSERT_TRUE(status.ok()) << status.ToString();
    fs::rename(dir_->path / "sp.model", dir_->path / "tokenizer.model");
  }
  static void TearDownTestSuite() { delete dir_; }
  static TempDir* dir_;
};
TempDir* SentencePiece::dir_ = nullptr;

TEST_F(SentencePiece, RoundTripsAwkwardTextAndStreams) {
  auto tok = load_tokenizer(dir_->path);
  EXPECT_THAT(tok->describe(), ::testing::HasSubstr("SentencePiece"));
  EXPECT_TRUE(tok->add_bos());
  EXPECT_EQ(tok->encode_prompt("hi").front(), tok->bos_id());
  for (const auto& s : kAwkward) {
    const auto ids = tok->encode(s);
    EXPECT_EQ(tok->decode(ids), s) << s;
    // Streaming after a prompt keeps the spaces SentencePiece strips at a decode's start.
    const auto ctx = tok->encode("context words");
    std::vector<int32_t> all = ctx;
    all.insert(all.end(), ids.begin(), ids.end());
    TokenStreamer st(*tok, ctx);
    std::string out;
    for (int32_t id : ids) out += st.push(id);
    out += st.finish();
    const std::string whole = tok->decode(all), head = tok->decode(ctx);
    EXPECT_EQ(head + out, whole) << s;
  }
  EXPECT_THAT(test_error([&] { load_sentencepiece(dir_->path / "corpus.txt"); }),
              ::testing::HasSubstr("cannot load SentencePiece model"));
}

// Byte-fallback pieces: "€" over <0xE2><0x82><0xAC>, an invalid <0xFF>, and a <0xE2> cut short.
TEST_F(SentencePiece, StreamsByteFallbackPiecesAsWholeCharacters) {
  auto tok = load_tokenizer(dir_->path);
  sentencepiece::SentencePieceProcessor sp;
  ASSERT_TRUE(sp.Load((dir_->path / "tokenizer.model").string()).ok());
  auto byte = [&](int b) {
    const int id = sp.PieceToId(fmt::format("<0x{:02X}>", b));
    EXPECT_TRUE(sp.IsByte(id)) << b;
    return id;
  };
  const auto ctx = tok->encode("price");
  const auto word = tok->encode("the");  // "▁the": " the" within a text
  ASSERT_FALSE(word.empty());
  TokenStreamer st(*tok, ctx);
  EXPECT_EQ(st.push(byte(0xE2)), "");
  EXPECT_EQ(st.push(byte(0x82)), "");
  EXPECT_EQ(st.push(byte(0xAC)), kEuro);
  EXPECT_EQ(st.push(byte(0xFF)), kReplacement);
  EXPECT_EQ(st.push(byte(0xE2)), "");
  std::string rest;
  for (int32_t id : word) rest += st.push(id);
  EXPECT_EQ(rest, kReplacement + " the");  // the space SentencePiece would strip is kept
  EXPECT_EQ(st.push(byte(0xF0)), "");
  EXPECT_EQ(st.finish(), kReplacement);
  const std::vector<int32_t> ids = {byte(0xE2), byte(0x82), byte(0xAC), byte(0xFF), byte(0xE2)};
  EXPECT_EQ(tok->decode(ids), kEuro + kReplacement + kReplacement);
  EXPECT_EQ(tok->decode_bytes(ids), "\xE2\x82\xAC\xFF\xE2");
  std::vector<int32_t> mixed = word;
  mixed.insert(mixed.end(), {byte(0xE2), byte(0x82)});
  mixed.insert(mixed.end(), word.begin(), word.end());
  EXPECT_EQ(tok->decode(mixed), "the" + kReplacement + " the");  // leading space stripped
}

TEST_F(SentencePiece, TokenizerConfigDecidesBosAndEos) {
  const TempDir d;
  fs::copy_file(dir_->path / "tokenizer.model", d.path / "tokenizer.model");
  auto plain = load_tokenizer(d.path);  // LlamaTokenizer's defaults: BOS yes, EOS no
  const auto body = plain->encode("hi");
  std::vector<int32_t> bos_body = {plain->bos_id()};
  bos_body.insert(bos_body.end(), body.begin(), body.end());
  EXPECT_EQ(plain->encode_prompt("hi"), bos_body);
  ASSERT_GE(plain->eos_id(), 0);
  write_text(d.path / "tokenizer_config.json",
             R"({"tokenizer_class": "LlamaTokenizer", "add_bos_token": false,
                 "add_eos_token": true, "bos_token": {"__type": "AddedToken", "content": "<s>"},
                 "eos_token": {"__type": "AddedToken", "content": "</s>"}})");
  auto tok = load_tokenizer(d.path);
  EXPECT_FALSE(tok->add_bos());
  EXPECT_TRUE(tok->add_eos());
  EXPECT_EQ(tok->bos_id(), plain->bos_id());
  std::vector<int32_t> body_eos = body;
  body_eos.push_back(plain->eos_id());
  EXPECT_EQ(tok->encode_prompt("hi"), body_eos);
  write_text(d.path / "tokenizer_config.json", R"({"bos_token": "<nope>"})");
  EXPECT_THAT(test_error([&] { load_tokenizer(d.path); }),
              ::testing::HasSubstr("bos_token '<nope>' is not a token of the tokenizer"));
}

// The shipped model: its tokenizer_config.json (add_bos_token true, add_eos_token false) and
// config.json (vocab_size 8192) agree with its tokenizer.model.
TEST(ShippedTokenizer, FollowsItsTokenizerConfig) {
  const fs::path dir = model_test_data() / ".." / ".." / ".." / "models" / "adamas-tiny-8k";
  if (!fs::exists(dir / "tokenizer.model")) GTEST_SKIP() << "no " << dir;
  auto tok = load_tokenizer(dir);
  EXPECT_LE(tok->vocab_size(), 8192);
  EXPECT_EQ(tok->bos_id(), 1);
  EXPECT_EQ(tok->eos_id(), 2);
  const auto ids = tok->encode_prompt("Once upon a time");
  EXPECT_EQ(ids.front(), 1);
  EXPECT_NE(ids.back(), 2);
  EXPECT_THROW(check_vocab_size(*tok, tok->vocab_size() - 1, dir.string()), Error);
}

// The tokenizers of the peer-check checkpoints: round trips, and when the Hugging Face reference
// holds tokenizer_cases, the same ids as the tokenizers library.
TEST(PeerTokenizers, MatchHuggingFaceTokenizers) {
  int compared = 0;
  for (const std::string v : {"llama_mha", "llama_gqa", "qwen2_bias"}) {
    const fs::path dir = model_check_dir() / v;
    if (!fs::exists(dir / "tokenizer.json")) continue;
    auto tok = load_tokenizer(dir);
    for (const auto& s : kAwkward) {
      std::string want = s;
      if (v == "qwen2_bias") want = tok->decode(tok->encode(s));  // NFC may change it
      EXPECT_EQ(tok->decode(tok->encode(s)), want) << v << ": " << s;
    }
    const fs::path ref = model_test_data() / (v + ".hf.safetensors");
    if (!fs::exists(ref)) continue;
    TensorStore st(ref);
    const auto& meta = st.files().front()->metadata();
    ASSERT_TRUE(meta.count("tokenizer_cases")) << ref;
    for (const auto& c : nlohmann::json::parse(meta.at("tokenizer_cases"))) {
      const auto text = c["text"].get<std::string>();
      EXPECT_EQ(tok->encode(text), c["ids"].get<std::vector<int32_t>>()) << v << ": " << text;
      EXPECT_EQ(tok->encode_prompt(text), c["ids_with_special"].get<std::vector<int32_t>>())
          << v << ": " << text;
      ++compared;
    }
  }
  if (compared == 0)
    GTEST_SKIP() << "no Hugging Face tokenizer cases in " << model_test_data()
                 << " (tools/model_check/hf_reference_logits.py writes them)";
}

}  // namespace
}  // namespace adamas::model::test
