// SentencePiece tokenizer.model through libsentencepiece (Llama 1/2, LongChat, Mistral v0.1).
#include <fmt/format.h>
#include <sentencepiece_processor.h>

#include "adamas/model/tokenizer.h"
#include "common/check.h"

namespace adamas::model {
namespace {

class SentencePieceTokenizer : public Tokenizer {
 public:
  explicit SentencePieceTokenizer(const std::filesystem::path& path) : path_(path.string()) {
    const auto status = sp_.Load(path_);
    ADAMAS_CHECK(status.ok(), "{}: cannot load SentencePiece model: {}", path_, status.ToString());
  }

  std::vector<int32_t> encode(std::string_view text) const override {
    std::vector<int> ids;
    const auto status = sp_.Encode(absl::string_view(text.data(), text.size()), &ids);
    ADAMAS_CHECK(status.ok(), "SentencePiece encode failed: {}", status.ToString());
    return {ids.begin(), ids.end()};
  }

  std::string decode(std::span<const int32_t> ids, bool skip_special) const override {
    std::vector<int> v;
    v.reserve(ids.size());
    const int n = sp_.GetPieceSize();
    for (int32_t id : ids) {
      ADAMAS_CHECK(id >= 0 && id < n, "token id {} out of range [0, {})", id, n);
      if (skip_special && sp_.IsControl(id)) continue;
      v.push_back(id);
    }
    std::string out;
    const auto status = sp_.Decode(v, &out);
    ADAMAS_CHECK(status.ok(), "SentencePiece decode failed: {}", status.ToString());
    return out;
  }

  int vocab_size() const override { return sp_.GetPieceSize(); }
  int bos_id() const override { return sp_.bos_id(); }
  int eos_id() const override { return sp_.eos_id(); }
  bool add_bos() const override { return sp_.bos_id() >= 0; }
  std::string describe() const override {
    return fmt::format("SentencePiece {} ({} pieces, bos {}, eos {})", path_, vocab_size(),
                       bos_id(), eos_id());
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
