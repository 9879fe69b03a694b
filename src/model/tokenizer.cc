#include "adamas/model/tokenizer.h"

#include <fmt/format.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common/check.h"
#include "model/json_depth.h"

namespace adamas::model {

namespace {

using nlohmann::json;

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  ADAMAS_CHECK(in.good(), "cannot open {}", path.string());
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// One UTF-8 sequence at bytes[i] by Unicode's table of well-formed sequences (3-7): its length
// when valid; else the length of its maximal ill-formed subpart (≥ 1), and whether that subpart
// only ended because the bytes did (more bytes could still make it valid).
struct Utf8Seq {
  size_t len;
  bool valid, truncated;
};

Utf8Seq next_utf8(std::string_view b, size_t i) {
  const auto c = static_cast<unsigned char>(b[i]);
  if (c < 0x80) return {1, true, false};
  int need = 0;
  unsigned char lo = 0x80, hi = 0xBF;  // the range of the second byte, then always 80..BF
  if (c >= 0xC2 && c <= 0xDF) {
    need = 1;
  } else if (c == 0xE0) {
    need = 2, lo = 0xA0;
  } else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) {
    need = 2;
  } else if (c == 0xED) {  // no surrogates
    need = 2, hi = 0x9F;
  } else if (c == 0xF0) {
    need = 3, lo = 0x90;
  } else if (c >= 0xF1 && c <= 0xF3) {
    need = 3;
  } else if (c == 0xF4) {  // nothing above U+10FFFF
    need = 3, hi = 0x8F;
  } else {
    return {1, false, false};  // 80..C1, F5..FF never start a character
  }
  for (int k = 1; k <= need; ++k) {
    if (i + k >= b.size()) return {static_cast<size_t>(k), false, true};
    const auto d = static_cast<unsigned char>(b[i + k]);
    if (d < lo || d > hi) return {static_cast<size_t>(k), false, false};
    lo = 0x80, hi = 0xBF;
  }
  return {static_cast<size_t>(need) + 1, true, false};
}

std::optional<bool> config_flag(const json& j, const char* key, std::string_view source) {
  if (!j.contains(key) || j[key].is_null()) return std::nullopt;
  ADAMAS_CHECK(j[key].is_boolean(), "{}: {} must be true or false, not {}", source, key,
               j[key].dump());
  return j[key].get<bool>();
}

// A special token written as "<s>", as {"content": "<s>", ...} (AddedToken) or as null ("").
std::optional<std::string> config_token(const json& j, const char* key, std::string_view source) {
  if (!j.contains(key)) return std::nullopt;
  const json& t = j[key];
  if (t.is_null()) return std::string();
  if (t.is_string()) return t.get<std::string>();
  ADAMAS_CHECK(t.is_object() && t.contains("content") && t["content"].is_string(),
               "{}: {} must be a string or an object with a \"content\" string, not {}", source,
               key, t.dump());
  return t["content"].get<std::string>();
}

// config.json's vocab_size when the file is there and says it; reading errors are left to the
// model loader, which reports them with the rest of the config.
std::optional<int> model_vocab_size(const std::filesystem::path& config_json) {
  if (!std::filesystem::exists(config_json)) return std::nullopt;
  try {
    const std::string text = read_file(config_json);
    if (json_depth(text) > kMaxJsonDepth) return std::nullopt;
    const json j = json::parse(text);
    // Compared as 64 bits (get<int> would wrap 2^32 + 1 to 1); one that does not fit an int is
    // the config loader's to report.
    if (j.is_object() && j.contains("vocab_size") && j["vocab_size"].is_number_integer()) {
      const json& v = j["vocab_size"];
      if (v.is_number_unsigned() ? v.get<uint64_t>() <= uint64_t(INT32_MAX)
                                 : v.get<int64_t>() >= 0 && v.get<int64_t>() <= INT32_MAX)
        return static_cast<int>(v.get<int64_t>());
    }
  } catch (const std::exception&) {
  }
  return std::nullopt;
}

}  // namespace

std::vector<int32_t> Tokenizer::encode_prompt(std::string_view text, bool with_bos) const {
  std::vector<int32_t> ids;
  if (with_bos && add_bos()) ids.push_back(bos_id());
  const auto body = encode(text);
  ids.insert(ids.end(), body.begin(), body.end());
  if (add_eos()) ids.push_back(eos_id());
  return ids;
}

void Tokenizer::configure(const TokenizerConfig& config, std::string_view source) {
  auto id_of = [&](const std::string& token, const char* key) -> int {
    if (token.empty()) return -1;  // null: no such token
    const int32_t id = token_id(token);
    ADAMAS_CHECK(id >= 0, "{}: {} '{}' is not a token of the tokenizer ({})", source, key, token,
                 describe());
    return id;
  };
  if (config.bos_token) bos_ = id_of(*config.bos_token, "bos_token");
  if (config.eos_token) eos_ = id_of(*config.eos_token, "eos_token");
  if (config.add_bos_token) add_bos_ = *config.add_bos_token;
  if (config.add_eos_token) add_eos_ = *config.add_eos_token;
}

TokenizerConfig parse_tokenizer_config(std::string_view text, std::string_view source) {
  const json j = parse_json_object(text, source);
  TokenizerConfig c;
  c.add_bos_token = config_flag(j, "add_bos_token", source);
  c.add_eos_token = config_flag(j, "add_eos_token", source);
  c.bos_token = config_token(j, "bos_token", source);
  c.eos_token = config_token(j, "eos_token", source);
  return c;
}

void check_vocab_size(const Tokenizer& tokenizer, int model_vocab_size, std::string_view what) {
  const int n = tokenizer.vocab_size();
  ADAMAS_CHECK(n <= model_vocab_size,
               "{}: the tokenizer has {} token ids (0..{}) but the model's vocab_size is {}: "
               "ids {} and up have no embedding; the tokenizer does not belong to this model",
               what, n, n - 1, model_vocab_size, model_vocab_size);
}

std::unique_ptr<Tokenizer> load_tokenizer(const std::filesystem::path& dir) {
  std::unique_ptr<Tokenizer> tok;
  std::filesystem::path file;
  if (std::filesystem::exists(dir / "tokenizer.model")) {
    file = dir / "tokenizer.model";
    tok = load_sentencepiece(file);
  } else if (std::filesystem::exists(dir / "tokenizer.json")) {
    file = dir / "tokenizer.json";
    tok = load_bpe(file);
  } else {
    throw Error(fmt::format("{}: no tokenizer.model (SentencePiece) or tokenizer.json found",
                            dir.string()));
  }
  const auto config = dir / "tokenizer_config.json";
  if (std::filesystem::exists(config))
    tok->configure(parse_tokenizer_config(read_file(config), config.string()), config.string());
  const auto model_config = dir / "config.json";
  if (const auto v = model_vocab_size(model_config))
    check_vocab_size(*tok, *v, fmt::format("{} against {}", file.string(), model_config.string()));
  return tok;
}

std::string utf8_replace_invalid(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  for (size_t i = 0; i < bytes.size();) {
    const Utf8Seq s = next_utf8(bytes, i);
    if (s.valid)
      out.append(bytes, i, s.len);
    else
      out += "\xEF\xBF\xBD";
    i += s.len;
  }
  return out;
}

size_t utf8_complete_prefix(std::string_view bytes) {
  for (size_t i = 0; i < bytes.size();) {
    const Utf8Seq s = next_utf8(bytes, i);
    if (s.truncated) return i;
    i += s.len;
  }
  return bytes.size();
}

TokenStreamer::TokenStreamer(const Tokenizer& tokenizer, std::span<const int32_t> context)
    : tok_(tokenizer), ids_(context.begin(), context.end()), prefix_(0), read_(ids_.size()) {}

// vLLM-style incremental detokenization: decode from a few tokens back so that the text of the
// new tokens is what they add in context (SentencePiece drops a leading space at a decode start),
// on raw bytes so that an unfinished character is told from an invalid one.
std::string TokenStreamer::push(int32_t id) {
  ids_.push_back(id);
  std::span<const int32_t> all(ids_);
  const std::string prefix = tok_.decode_bytes(all.subspan(prefix_, read_ - prefix_));
  const std::string text = tok_.decode_bytes(all.subspan(prefix_));
  const size_t from = prefix.size() + written_;
  if (text.size() <= from) return "";  // nothing new (e.g. a control token)
  const std::string_view fresh = std::string_view(text).substr(from);
  const size_t n = utf8_complete_prefix(fresh);
  std::string out = utf8_replace_invalid(fresh.substr(0, n));
  if (n == fresh.size()) {  // all written: the window moves on
    prefix_ = read_;
    read_ = ids_.size();
    written_ = 0;
  } else {
    written_ += n;
  }
  return out;
}

std::string TokenStreamer::finish() {
  std::span<const int32_t> all(ids_);
  const std::string prefix = tok_.decode_bytes(all.subspan(prefix_, read_ - prefix_));
  const std::string text = tok_.decode_bytes(all.subspan(prefix_));
  const size_t from = prefix.size() + written_;
  prefix_ = read_ = ids_.size();
  written_ = 0;
  return text.size() > from ? utf8_replace_invalid(std::string_view(text).substr(from)) : "";
}

}  // namespace adamas::model
