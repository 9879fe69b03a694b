// SentencePiece tokenizer.model through libsentencepiece (Llama 1/2, LongChat, Mistral v0.1).
#include <fmt/format.h>
#include <sentencepiece_processor.h>

#include <string>

#include "adamas/model/tokenizer.h"
#include "common/check.h"

namespace adamas::model {
namespace {

int byte_of(const std::string& piece) {  // "<0xE2>" → 0xE2
  ADAMAS_CHECK(piece.size() == 6 && piece.compare(0, 3, "<0x") == 0 && piece[5] == '>',
               "SentencePiece byte piece '{}' is not of the form <0xHH>", piece);
  return std::stoi(piece.substr(3, 2), nullptr, 16);
}

class SentencePieceTokenizer : public Tokenizer {
 public:
  explicit SentencePieceTokenizer(const std::filesystem::path& path) : path_(path.string()) {
    const auto status = sp_.Load(path_);
    ADAMAS_CHECK(status.ok(), "{}: cannot load SentencePiece model: {}", path_, status.ToString());
    // Hugging Face's LlamaTokenizer defaults: add_bos_token true, add_eos_token false.
    bos_ = sp_.bos_id();
    eos_ = sp_.eos_id();
    add_bos_ = true;
  }

  std::vector<int32_t> encode(std::string_view text) const override {
    std::vector<int> ids;
    const auto status = sp_.Encode(absl::string_view(text.data(), text.size()), &ids);
    ADAMAS_CHECK(status.ok(), "SentencePiece encode failed: {}", status.ToString());
    return {ids.begin(), ids.end()};
  }

  std::string decode(std::span<const int32_t> ids, bool skip_special) const override {
    return utf8_replace_invalid(decode_bytes(ids, skip_special));
  }

  // SentencePiece's decode, except that byte-fallback pieces (<0xE2>) stay the raw bytes they
  // stand for, where SentencePiece writes U+FFFD for each byte of an unfinished character.
  std::string decode_bytes(std::span<const int32_t> ids, bool skip_special) const override {
    std::vector<int> v;
    v.reserve(ids.size());
    const int n = sp_.GetPieceSize();
    bool bytes = false;
    for (int32_t id : ids) {
      ADAMAS_CHECK(id >= 0 && id < n, "token id {} out of range [0, {})", id, n);
      if (skip_special && sp_.IsControl(id)) continue;
      bytes = bytes || sp_.IsByte(id);
      v.push_back(id);
    }
    std::string out;
    if (!bytes) {
      const auto status = sp_.Decode(v, &out);
      ADAMAS_CHECK(status.ok(), "SentencePiece decode failed: {}", status.ToString());
      return out;
    }
    sentencepiece::ImmutableSentencePieceText spt;
    const auto status = sp_.Decode(v, spt.mutable_proto());
    ADAMAS_CHECK(status.ok(), "SentencePiece decode failed: {}", status.ToString());
    std::string surfaces;
    for (const auto& p : spt.pieces()) {
      surfaces += p.surface();
      if (sp_.IsByte(static_cast<int>(p.id())))
        out += static_cast<char>(byte_of(p.piece()));
      else
        out += p.surface();
    }
    // A model with a denormalizer rewrites the joined surfaces: keep SentencePiece's text then.
    return surfaces == spt.text() ? out : spt.text();
  }

  int vocab_size() const override { return sp_.GetPieceSize(); }
  std::string describe() const override {
    return fmt::format("SentencePiece {} ({} pieces, bos {}{}, eos {}{})", path_, vocab_size(),
                       bos_id(), add_bos() ? "" : " not added", eos_id(),
                       add_eos() ? " added" : "");
  }

 protected:
  int32_t token_id(std::string_view token) const override {
    const int id = sp_.PieceToId(absl::string_view(token.data(), token.size()));
    // PieceToId answers the unknown piece's id for a piece it does not know.
    if (id < 0 || (sp_.IsUnknown(id) && sp_.IdToPiece(id) != token)) return -1;
    return id;
  }

 private:
  std::string path_;
  sentencepiece::SentencePieceProcessor sp_;
};

}  // namespace

std::unique_ptr<Tokenizer> load_sentencepiece(const std::filesystem::path& model_file) {
  return std::make_unique<SentencePieceTokenizer>(model_file);
}

}  // namespace adamas::model
