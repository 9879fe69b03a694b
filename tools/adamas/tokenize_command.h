// `adamas tokenize`: the token ids of a text as a Hugging Face tokenizer call gives them
// ({"input_ids": [...]}, plus each id's text), for peer checks without writing C++.
#pragma once

namespace CLI {
class App;
}

namespace adamas::cli {

void add_tokenize_command(CLI::App& app, int& status);

}  // namespace adamas::cli
