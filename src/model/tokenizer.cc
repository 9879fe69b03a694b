#include "adamas/model/tokenizer.h"

#include <fmt/format.h>

#include "common/check.h"

namespace adamas::model {

std::vector<int32_t> Tokenizer::encode_prompt(std::string_view text) const {
  std::vector<int32_t> ids;
  if (add_bos() && bos_id() >= 0) ids.push_back(bos_id());
  const auto body = encode(text);
  ids.insert(ids.end(), body.begin(), body.end());
  return ids;
}

std::unique_ptr<Tokenizer> load_tokenizer(const std::filesystem::path& dir) {
  if (std::filesystem::exists(dir / "tokenizer.model"))
    return load_sentencepiece(dir / "tokenizer.model");
  if (std::filesystem::exists(dir / "tokenizer.json")) return load_bpe(dir / "tokenizer.json");
  throw Error(
      fmt::format("{}: no tokenizer.model (SentencePiece) or tokenizer.json found", dir.string()));
}

TokenStreamer::TokenStreamer(const Tokenizer& tokenizer, std::span<const int32_t> context)
    : tok_(tokenizer), ids_(context.begin(), context.end()), prefix_(0), read_(ids_.size()) {}

namespace {
bool ends_unfinished(const std::string& s) {  // U+FFFD: a character still missing bytes
  return s.size() >= 3 && s.compare(s.size() - 3, 3, "\xEF\xBF\xBD") == 0;
}
}  // namespace

// vLLM-style incremental detokenization: decode from a few tokens back so that the text of the
// new tokens is what they add in context (SentencePiece drops a leading space at a decode start).
std::string TokenStreamer::push(int32_t id) {
  ids_.push_back(id);
  std::span<const int32_t> all(ids_);
  const std::string prefix = tok_.decode(all.subspan(prefix_, read_ - prefix_));
  const std::string text = tok_.decode(all.subspan(prefix_));
  if (text.size() > prefix.size() && !ends_unfinished(text)) {
    std::string out = text.substr(prefix.size());
    prefix_ = read_;
    read_ = ids_.size();
    return out;
  }
  return "";
}

std::string TokenStreamer::finish() {
  std::span<const int32_t> all(ids_);
  const std::string prefix = tok_.decode(all.subspan(prefix_, read_ - prefix_));
  const std::string text = tok_.decode(all.subspan(prefix_));
  prefix_ = read_ = ids_.size();
  return text.size() > prefix.size() ? text.substr(prefix.size()) : "";
}

}  // namespace adamas::model
