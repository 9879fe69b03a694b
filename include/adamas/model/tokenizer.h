// Tokenizers of Llama-family checkpoints: SentencePiece (tokenizer.model, through Debian's
// libsentencepiece) and Hugging Face byte-level BPE (tokenizer.json, Llama-3 / Qwen2 / GPT-2
// style), plus an incremental detokenizer for streaming.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace adamas::model {

// What tokenizer_config.json says about BOS and EOS (Hugging Face names); unset fields keep what
// the tokenizer file itself says.
struct TokenizerConfig {
  std::optional<bool> add_bos_token, add_eos_token;
  // The tokens' text: written as a string or as an AddedToken object {"content": "<s>", ...};
  // an empty string stands for JSON null (no such token).
  std::optional<std::string> bos_token, eos_token;
};

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  // Text → ids, without BOS. Special tokens written in the text (e.g. "<|eot_id|>") become their
  // ids, as Hugging Face does by default.
  virtual std::vector<int32_t> encode(std::string_view text) const = 0;
  // Ids → UTF-8 text; special/control tokens are dropped when skip_special. Always valid UTF-8:
  // bytes that form no character become U+FFFD, as Hugging Face's decode does.
  virtual std::string decode(std::span<const int32_t> ids, bool skip_special = true) const = 0;
  // The bytes behind decode(), before that repair: may hold invalid UTF-8 or end inside a
  // character (byte-level or byte-fallback tokens split characters). For streaming.
  virtual std::string decode_bytes(std::span<const int32_t> ids,
                                   bool skip_special = true) const = 0;
  virtual int vocab_size() const = 0;  // ids are [0, vocab_size())
  virtual std::string describe() const = 0;

  int bos_id() const { return bos_; }  // −1: none
  int eos_id() const { return eos_; }  // −1: none (the model config's eos ids still apply)
  // Whether prompts start with BOS / end with EOS: tokenizer_config.json's add_bos_token /
  // add_eos_token when given, else the tokenizer file's default (SentencePiece: BOS yes; a
  // tokenizer.json: BOS when its post-processor template starts with a special token; EOS no).
  bool add_bos() const { return add_bos_ && bos_ >= 0; }
  bool add_eos() const { return add_eos_ && eos_ >= 0; }

  // encode(), with BOS in front when add_bos() and EOS behind when add_eos(), as Hugging Face's
  // tokenizer(text) does. with_bos = false leaves BOS out whatever add_bos() says.
  std::vector<int32_t> encode_prompt(std::string_view text, bool with_bos = true) const;

  // Applies tokenizer_config.json's settings; `source` names it in errors (a bos_token or
  // eos_token that is not a token of this tokenizer is one).
  void configure(const TokenizerConfig& config, std::string_view source = "tokenizer_config.json");

 protected:
  // The id of a token given by its text (a vocabulary or added token), −1 when there is none.
  virtual int32_t token_id(std::string_view token) const = 0;

  int bos_ = -1, eos_ = -1;
  bool add_bos_ = false, add_eos_ = false;
};

// tokenizer_config.json text; `source` names it in error messages.
TokenizerConfig parse_tokenizer_config(std::string_view json_text,
                                       std::string_view source = "tokenizer_config.json");

// Throws adamas::Error when the tokenizer has ids the model has no embedding rows for
// (tokenizer vocab_size() > the model's vocab_size); `what` names the tokenizer in the message.
void check_vocab_size(const Tokenizer& tokenizer, int model_vocab_size, std::string_view what);

// DIR/tokenizer.model (SentencePiece) if present, else DIR/tokenizer.json (byte-level BPE);
// then DIR/tokenizer_config.json's BOS/EOS settings when that file is present, and, when
// DIR/config.json gives the model's vocab_size, check_vocab_size against it (so a tokenizer that
// does not belong to the model fails here, not in the middle of a generation).
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

// Turns generated ids into text as they arrive: only whole UTF-8 characters are written, the
// bytes of an unfinished one are held back until it completes, and bytes that can form no
// character are written as U+FFFD (Hugging Face's errors="replace"); the spaces SentencePiece
// strips at the start of a decode are kept.
class TokenStreamer {
 public:
  // context: ids that precede the generated ones (e.g. the prompt's last few), not printed.
  explicit TokenStreamer(const Tokenizer& tokenizer, std::span<const int32_t> context = {});
  std::string push(int32_t id);  // text that became complete with this id (possibly empty)
  std::string finish();          // whatever is still held back (an unfinished character: U+FFFD)

 private:
  const Tokenizer& tok_;
  std::vector<int32_t> ids_;
  // decode_bytes(ids[prefix_, read_)) plus `written_` more bytes of decode_bytes(ids[prefix_,
  // end)) have been written.
  size_t prefix_ = 0, read_ = 0, written_ = 0;
};

// Valid UTF-8 from bytes: each maximal ill-formed subsequence becomes one U+FFFD (Python's
// bytes.decode("utf-8", errors="replace"), Rust's from_utf8_lossy).
std::string utf8_replace_invalid(std::string_view bytes);
// The length of the longest prefix of `bytes` that does not end inside a character that later
// bytes could still complete (an unfinished but so far valid sequence at the end).
size_t utf8_complete_prefix(std::string_view bytes);

}  // namespace adamas::model
