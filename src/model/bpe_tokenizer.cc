// Hugging Face tokenizer.json, byte-level BPE (Llama-3, Qwen2, GPT-2 style): added tokens split
// out first, optional NFC, the split pattern (pretokenize.cc), bytes mapped to GPT-2's printable
// characters, then merges by rank.
#include <fmt/format.h>
#include <unicode/normalizer2.h>
#include <unicode/unistr.h>

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <unordered_map>

#include "adamas/model/tokenizer.h"
#include "common/check.h"
#include "model/json_depth.h"

namespace adamas::model {
namespace {

using nlohmann::json;

void append_utf8(std::string& s, uint32_t c) {
  if (c < 0x80) {
    s += static_cast<char>(c);
  } else if (c < 0x800) {
    s += static_cast<char>(0xc0 | (c >> 6));
    s += static_cast<char>(0x80 | (c & 0x3f));
  } else if (c < 0x10000) {
    s += static_cast<char>(0xe0 | (c >> 12));
    s += static_cast<char>(0x80 | ((c >> 6) & 0x3f));
    s += static_cast<char>(0x80 | (c & 0x3f));
  } else {
    s += static_cast<char>(0xf0 | (c >> 18));
    s += static_cast<char>(0x80 | ((c >> 12) & 0x3f));
    s += static_cast<char>(0x80 | ((c >> 6) & 0x3f));
    s += static_cast<char>(0x80 | (c & 0x3f));
  }
}

// GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves, the others for
// U+0100 + k in byte order.
std::array<uint32_t, 256> byte_to_char() {
  std::array<uint32_t, 256> m{};
  int extra = 0;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
    m[b] = printable ? b : 256 + extra++;
  }
  return m;
}

const std::string kPatternLlama3 =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
const std::string kPatternQwen2 =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

class BpeTokenizer : public Tokenizer {
 public:
  BpeTokenizer(const json& j, std::string source) : source_(std::move(source)) {
    const json& model = j.at("model");
    const std::string type = model.value("type", "BPE");
    ADAMAS_CHECK(type == "BPE", "{}: unsupported tokenizer model type '{}': expected BPE", source_,
                 type);
    ignore_merges_ = model.value("ignore_merges", false);
    for (const auto& [tok, id] : model.at("vocab").items()) add_token(tok, token_id_value(tok, id));
    int rank = 0;
    for (const auto& m : model.at("merges")) {
      std::string key;
      if (m.is_string()) {
        key = m.get<std::string>();
      } else {
        ADAMAS_CHECK(m.is_array() && m.size() == 2, "{}: malformed merge {}", source_, m.dump());
        key = m[0].get<std::string>() + " " + m[1].get<std::string>();
      }
      ranks_.emplace(std::move(key), rank++);
    }
    if (j.contains("added_tokens"))
      for (const auto& a : j["added_tokens"]) {
        const auto content = a.at("content").get<std::string>();
        const int32_t id = token_id_value(content, a.at("id"));
        // Hugging Face ignores added tokens with empty content; matched in the text, one would
        // match everywhere without advancing (encode never returned).
        if (content.empty()) continue;
        add_token(content, id);
        added_.push_back({content, id, a.value("special", false)});
        if (added_.back().special) special_ids_.push_back(id);
      }
    std::sort(added_.begin(), added_.end(),
              [](const auto& a, const auto& b) { return a.content.size() > b.content.size(); });
    parse_normalizer(j.contains("normalizer") ? j["normalizer"] : json());
    parse_pre_tokenizer(j.contains("pre_tokenizer") ? j["pre_tokenizer"] : json());
    if (j.contains("post_processor")) find_bos(j["post_processor"]);
    add_bos_ = bos_ >= 0;  // tokenizer_config.json's add_bos_token may say otherwise
    const auto b2c = byte_to_char();
    for (int b = 0; b < 256; ++b) {
      append_utf8(byte_str_[b], b2c[b]);
      char_to_byte_[b2c[b]] = static_cast<uint8_t>(b);
    }
  }

  std::vector<int32_t> encode(std::string_view text) const override {
    std::vector<int32_t> ids;
    // Added tokens are matched in the raw text, longest first, before anything else.
    size_t start = 0;
    for (size_t i = 0; i < text.size();) {
      const Added* hit = nullptr;
      for (const auto& a : added_)
        if (text.compare(i, a.content.size(), a.content) == 0) {
          hit = &a;
          break;
        }
      if (!hit) {
        ++i;
        continue;
      }
      encode_plain(text.substr(start, i - start), ids);
      ids.push_back(hit->id);
      i += hit->content.size();
      start = i;
    }
    encode_plain(text.substr(start), ids);
    return ids;
  }

  // As the ByteLevel decoder: bytes, then from_utf8_lossy.
  std::string decode(std::span<const int32_t> ids, bool skip_special) const override {
    return utf8_replace_invalid(decode_bytes(ids, skip_special));
  }

  std::string decode_bytes(std::span<const int32_t> ids, bool skip_special) const override {
    std::string out;
    for (int32_t id : ids) {
      ADAMAS_CHECK(id >= 0 && id < vocab_size(), "token id {} out of range [0, {})", id,
                   vocab_size());
      // Hugging Face's skip_special_tokens: special added tokens, BOS and EOS.
      if (skip_special &&
          (id == bos_ || id == eos_ ||
           std::find(special_ids_.begin(), special_ids_.end(), id) != special_ids_.end()))
        continue;
      if (is_added(id)) {  // written as is
        out += tokens_[id];
        continue;
      }
      // Map each character of the token back to its byte.
      const std::string& t = tokens_[id];
      for (size_t i = 0; i < t.size();) {
        const auto b = static_cast<unsigned char>(t[i]);
        const int len = b < 0x80 ? 1 : b < 0xe0 ? 2 : b < 0xf0 ? 3 : 4;
        uint32_t c = len == 1 ? b : len == 2 ? b & 0x1f : len == 3 ? b & 0x0f : b & 0x07;
        for (int k = 1; k < len && i + k < t.size(); ++k) c = (c << 6) | (t[i + k] & 0x3f);
        auto it = char_to_byte_.find(c);
        if (it != char_to_byte_.end())
          out += static_cast<char>(it->second);
        else
          out.append(t, i, len);
        i += len;
      }
    }
    return out;
  }

  int vocab_size() const override { return static_cast<int>(tokens_.size()); }
  std::string describe() const override {
    const char* pat = pattern_ == SplitPattern::kLlama3  ? "llama3"
                      : pattern_ == SplitPattern::kQwen2 ? "qwen2"
                                                         : "gpt2";
    return fmt::format(
        "byte-level BPE {} ({} tokens, {} merges, {} split{}{}{})", source_, vocab_size(),
        ranks_.size(), pat, nfc_ ? ", NFC" : "",
        bos_ >= 0 ? fmt::format(", bos {}{}", bos_, add_bos_ ? "" : " not added") : "",
        eos_ >= 0 ? fmt::format(", eos {}{}", eos_, add_eos_ ? " added" : "") : "");
  }

 protected:
  int32_t token_id(std::string_view token) const override {
    auto it = vocab_.find(std::string(token));
    return it == vocab_.end() ? -1 : it->second;
  }

 private:
  struct Added {
    std::string content;
    int32_t id;
    bool special;
  };

  // A token id as written: an integer in [0, 2^24), compared as 64 bits. (nlohmann's get<int32_t>
  // silently wraps 2^32 to 0, truncates 3.7 to 3, and converting 1e30 is undefined behaviour.)
  int32_t token_id_value(const std::string& tok, const json& id) const {
    constexpr int64_t kMaxIds = 1 << 24;
    const bool ok =
        id.is_number_integer() &&
        (id.is_number_unsigned() ? id.get<uint64_t>() < uint64_t(kMaxIds)
                                 : id.get<int64_t>() >= 0 && id.get<int64_t>() < kMaxIds);
    ADAMAS_CHECK(ok, "{}: token '{}' has a bad id {}: expected an integer in [0, {})", source_, tok,
                 id.dump(), kMaxIds);
    return static_cast<int32_t>(id.get<int64_t>());
  }

  void add_token(const std::string& tok, int32_t id) {
    if (static_cast<size_t>(id) >= tokens_.size()) tokens_.resize(id + 1);
    tokens_[id] = tok;
    vocab_.emplace(tok, id);
  }
  bool is_added(int32_t id) const {
    for (const auto& a : added_)
      if (a.id == id) return true;
    return false;
  }

  void parse_normalizer(const json& n) {
    if (n.is_null()) return;
    const std::string type = n.value("type", "");
    if (type == "NFC") {
      nfc_ = true;
    } else if (type == "Sequence" && n.contains("normalizers") && n["normalizers"].empty()) {
    } else {
      throw Error(
          fmt::format("{}: unsupported normalizer '{}': expected none or NFC", source_, type));
    }
  }

  void parse_pre_tokenizer(const json& p) {
    const std::string type = p.is_null() ? "" : p.value("type", "");
    if (type == "ByteLevel") {  // GPT-2: the split is the ByteLevel pre-tokenizer's own regex
      ADAMAS_CHECK(p.value("use_regex", true),
                   "{}: ByteLevel pre-tokenizer without a split "
                   "pattern is not supported",
                   source_);
      pattern_ = SplitPattern::kGpt2;
      prefix_space_ = p.value("add_prefix_space", false);
      return;
    }
    ADAMAS_CHECK(type == "Sequence" && p.contains("pretokenizers"),
                 "{}: unsupported pre_tokenizer '{}': expected a byte-level BPE tokenizer "
                 "(Sequence of Split + ByteLevel, or ByteLevel)",
                 source_, p.dump());
    bool split = false, byte_level = false;
    for (const auto& q : p["pretokenizers"]) {
      const std::string t = q.value("type", "");
      if (t == "Split") {
        const std::string pat = q.contains("pattern") && q["pattern"].contains("Regex")
                                    ? q["pattern"]["Regex"].get<std::string>()
                                    : "";
        if (pat == kPatternLlama3)
          pattern_ = SplitPattern::kLlama3;
        else if (pat == kPatternQwen2)
          pattern_ = SplitPattern::kQwen2;
        else
          throw Error(
              fmt::format("{}: unsupported split pattern '{}': expected the Llama-3 "
                          "or Qwen2 pattern",
                          source_, pat));
        split = true;
      } else if (t == "ByteLevel") {
        byte_level = true;
        prefix_space_ = q.value("add_prefix_space", false);
      } else {
        throw Error(fmt::format("{}: unsupported pre-tokenizer step '{}'", source_, t));
      }
    }
    ADAMAS_CHECK(split && byte_level, "{}: expected a Split and a ByteLevel pre-tokenizer",
                 source_);
  }

  // BOS from a TemplateProcessing post-processor whose single-sequence template starts with a
  // special token (Llama-3's <|begin_of_text|>).
  void find_bos(const json& p) {
    if (p.is_null()) return;
    if (p.value("type", "") == "Sequence" && p.contains("processors"))
      for (const auto& q : p["processors"]) find_bos(q);
    if (p.value("type", "") == "TemplateProcessing" && p.contains("single") &&
        !p["single"].empty() && p["single"][0].contains("SpecialToken")) {
      const auto name = p["single"][0]["SpecialToken"].at("id").get<std::string>();
      auto it = vocab_.find(name);
      if (it != vocab_.end()) bos_ = it->second;
    }
  }

  void encode_plain(std::string_view text, std::vector<int32_t>& ids) const {
    if (text.empty()) return;
    std::string buf;
    if (nfc_) {
      UErrorCode err = U_ZERO_ERROR;
      const icu::Normalizer2* nfc = icu::Normalizer2::getNFCInstance(err);
      ADAMAS_CHECK(U_SUCCESS(err), "ICU NFC normalizer unavailable: {}", u_errorName(err));
      const auto u = nfc->normalize(
          icu::UnicodeString::fromUTF8(icu::StringPiece(text.data(), text.size())), err);
      ADAMAS_CHECK(U_SUCCESS(err), "NFC normalization failed: {}", u_errorName(err));
      u.toUTF8String(buf);
    } else {
      buf.assign(text);
    }
    if (prefix_space_ && buf[0] != ' ') buf.insert(buf.begin(), ' ');
    for (std::string_view piece : pretokenize(buf, pattern_)) encode_word(piece, ids);
  }

  void encode_word(std::string_view word, std::vector<int32_t>& ids) const {
    std::vector<std::string> sym;
    std::string whole;
    for (unsigned char b : word) {
      sym.push_back(byte_str_[b]);
      whole += byte_str_[b];
    }
    if (ignore_merges_) {
      auto it = vocab_.find(whole);
      if (it != vocab_.end()) {
        ids.push_back(it->second);
        return;
      }
    }
    std::string key;
    while (sym.size() > 1) {  // merge the lowest-rank adjacent pair, leftmost first
      int best = INT32_MAX;
      size_t at = 0;
      for (size_t i = 0; i + 1 < sym.size(); ++i) {
        key.assign(sym[i]).append(" ").append(sym[i + 1]);
        auto it = ranks_.find(key);
        if (it != ranks_.end() && it->second < best) best = it->second, at = i;
      }
      if (best == INT32_MAX) break;
      sym[at] += sym[at + 1];
      sym.erase(sym.begin() + at + 1);
    }
    for (const auto& s : sym) {
      auto it = vocab_.find(s);
      ADAMAS_CHECK(it != vocab_.end(), "{}: symbol '{}' is not in the vocabulary", source_, s);
      ids.push_back(it->second);
    }
  }

  std::string source_;
  std::vector<std::string> tokens_;
  std::unordered_map<std::string, int32_t> vocab_;
  std::unordered_map<std::string, int> ranks_;
  std::vector<Added> added_;
  std::vector<int32_t> special_ids_;
  bool ignore_merges_ = false, nfc_ = false, prefix_space_ = false;
  SplitPattern pattern_ = SplitPattern::kLlama3;
  std::array<std::string, 256> byte_str_;
  std::unordered_map<uint32_t, uint8_t> char_to_byte_;
};

}  // namespace

std::unique_ptr<Tokenizer> parse_bpe(std::string_view text, std::string_view source) {
  const json j = parse_json_object(text, source);
  try {
    return std::make_unique<BpeTokenizer>(j, std::string(source));
  } catch (const json::exception& e) {
    throw Error(fmt::format("{}: malformed tokenizer: {}", source, e.what()));
  }
}

std::unique_ptr<Tokenizer> load_bpe(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  ADAMAS_CHECK(in.good(), "cannot open {}", path.string());
  std::stringstream ss;
  ss << in.rdbuf();
  return parse_bpe(ss.str(), path.string());
}

}  // namespace adamas::model
