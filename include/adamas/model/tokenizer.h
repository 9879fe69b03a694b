// Tokenizers of Llama-family checkpoints: SentencePiece (tokenizer.model, through Debian's
// libsentencepiece) and Hugging Face byte-level BPE (tokenizer.json, Llama-3 / Qwen2 / GPT-2
// style), plus an incremental detokenizer for streaming.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace adamas::model {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  // Text → ids, without BOS. Special tokens written in the text (e.g. "<|eot_id|>") become their
  // ids, as Hugging Face does by default.
  virtual std::vector<int32_t> encode(std::string_view text) const = 0;
  // Ids → UTF-8 text; special/control tokens are dropped when skip_special.
  virtual std::string decode(std::span<const int32_t> ids, bool skip_special = true) const = 0;
  virtual int vocab_size() const = 0;
  virtual int bos_id() const = 0;    // −1: none
  virtual int eos_id() const = 0;    // −1: none (the model config's eos ids still apply)
  virtual bool add_bos() const = 0;  // whether prompts start with BOS (Llama: yes, Qwen2: no)
  virtual std::string describe() const = 0;

  // encode(), with BOS in front when add_bos().
  std::vector<int32_t> encode_prompt(std::string_view text) const;
};

// DIR/tokenizer.model (SentencePiece) if present, else DIR/tokenizer.json (byte-level BPE).
std::unique_ptr<Tokenizer> load_tokenizer(const std::filesystem::path& dir);
std::unique_ptr<Tokenizer> load_sentencepiece(const std::filesystem::path& model_file);
std::unique_ptr<Tokenizer> load_bpe(const std::filesystem::path& tokenizer_json);
// tokenizer.json text; `source` names it in error messages.
std::unique_ptr<Tokenizer> parse_bpe(std::string_view json_text,
                                     std::string_view source = "tokenizer.json");

// Pre-tokenization split patterns of byte-level BPE tokenizers, implemented by hand (std::regex
// has no \p{L}); Unicode classes from ICU.
//   kLlama3: (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
//            ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
//   kQwen2:  the same with \p{N} (single digits)
//   kGpt2:   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
enum class SplitPattern { kLlama3, kQwen2, kGpt2 };
// The pieces, in order; their concatenation is `text` (invalid UTF-8 bytes are kept, one piece
// each, as "other" characters).
std::vector<std::string_view> pretokenize(std::string_view text, SplitPattern pattern);

// Turns generated ids into text as they arrive, holding back bytes of an unfinished UTF-8
// character and keeping the spaces SentencePiece strips at the start of a decode.
class TokenStreamer {
 public:
  // context: ids that precede the generated ones (e.g. the prompt's last few), not printed.
  explicit TokenStreamer(const Tokenizer& tokenizer, std::span<const int32_t> context = {});
  std::string push(int32_t id);  // text that became complete with this id (possibly empty)
  std::string finish();          // whatever is still held back

 private:
  const Tokenizer& tok_;
  std::vector<int32_t> ids_;
  size_t prefix_ = 0, read_ = 0;  // decode(ids[prefix_, read_)) has been printed
};

}  // namespace adamas::model
