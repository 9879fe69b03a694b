// Tokenizers: the hand-written split patterns against hand-derived splits, byte-level BPE and
// SentencePiece round trips on awkward text, special tokens, NFC, streaming; and, when the
// Hugging Face reference files are present, our BPE ids against the tokenizers library's.
#include "adamas/model/tokenizer.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
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

TEST(TokenStreamer, EmitsCompleteCharactersOnly) {
  auto tok = parse_bpe(small_bpe_json(kLlama3Pre, false), "small.json");
  for (const auto& s : kAwkward) {
    const auto ids = tok->encode(s);
    TokenStreamer st(*tok);
    std::string out;
    for (int32_t id : ids) {
      const std::string piece = st.push(id);
      EXPECT_EQ(piece.find("\xEF\xBF\xBD"), std::string::npos);  // never half a character
      out += piece;
    }
    out += st.finish();
    EXPECT_EQ(out, s);
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
