#include "tokenize_command.h"

#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "adamas/common/error.h"
#include "adamas/model/tokenizer.h"
#include "result_file.h"

namespace adamas::cli {
namespace {

struct TokenizeOptions {
  std::string model;
  std::string text, text_file;
  bool no_bos = false;
  std::string out;  // empty: stdout
};

int run_tokenize(const TokenizeOptions& o) {
  const std::string text =
      o.text_file.empty() ? o.text : read_input_file(o.text_file, "--text-file");
  std::unique_ptr<ResultFile> out;
  if (!o.out.empty()) out = std::make_unique<ResultFile>(o.out, "--out");
  const auto tok = model::load_tokenizer(o.model);
  const std::vector<int32_t> ids = tok->encode_prompt(text, /*with_bos=*/!o.no_bos);
  nlohmann::json j;
  j["input_ids"] = ids;
  nlohmann::json pieces = nlohmann::json::array();
  for (int32_t id : ids) pieces.push_back(tok->decode(std::span<const int32_t>(&id, 1), false));
  j["tokens"] = pieces;  // each id decoded alone (special tokens kept)
  j["tokenizer"] = tok->describe();
  // Pieces of a multi-byte character are not valid UTF-8 alone: written as U+FFFD.
  const std::string s = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  if (out) {
    out->out() << s << "\n";
    out->commit();
  } else {
    fmt::print("{}\n", s);
  }
  return 0;
}

}  // namespace

void add_tokenize_command(CLI::App& app, int& status) {
  auto o = std::make_shared<TokenizeOptions>();
  CLI::App* cmd = app.add_subcommand(
      "tokenize", "Token ids of a text as JSON ({\"input_ids\": [...]}, as a Hugging Face call)");
  cmd->add_option("--model", o->model, "model directory (tokenizer.json or tokenizer.model)")
      ->required();
  auto* t = cmd->add_option("--text", o->text, "the text");
  auto* f = cmd->add_option("--text-file", o->text_file, "file holding the text");
  t->excludes(f);
  cmd->add_flag("--no-bos", o->no_bos, "no BOS token (default: as tokenizer_config.json says)");
  cmd->add_option("--out", o->out, "JSON output file (default: stdout)");
  cmd->callback([o, t, f, &status] {
    if (t->count() == 0 && f->count() == 0) throw Error("give --text TEXT or --text-file F");
    status = run_tokenize(*o);
  });
}

}  // namespace adamas::cli
