// The adamas command-line tool.
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <exception>
#include <filesystem>
#include <new>

#include "adamas/common/error.h"
#include "bench_command.h"
#include "bench_e2e_command.h"
#include "bench_matvec_command.h"
#include "demo_command.h"
#include "eval_command.h"
#include "generate_command.h"
#include "inspect_command.h"
#include "recall_command.h"
#include "tokenize_command.h"

int main(int argc, char** argv) {
  CLI::App app{"adamas: Hadamard sparse attention for long-context LLM decoding"};
  app.require_subcommand(1);
  int status = 0;
  adamas::cli::add_demo_command(app, status);
  adamas::cli::add_bench_command(app, status);
  adamas::cli::add_bench_e2e_command(app, status);
  adamas::cli::add_bench_matvec_command(app, status);
  adamas::cli::add_recall_command(app, status);
  adamas::cli::add_eval_command(app, status);
  adamas::cli::add_generate_command(app, status);
  adamas::cli::add_inspect_command(app, status);
  adamas::cli::add_tokenize_command(app, status);
  // An unknown command word: CLI11 would only say that a subcommand is required.
  std::string names;
  bool known = false;
  for (const CLI::App* sub : app.get_subcommands({})) {
    names += (names.empty() ? "" : ", ") + sub->get_name();
    known = known || (argc > 1 && sub->get_name() == argv[1]);
  }
  if (argc > 1 && argv[1][0] != '-' && !known) {
    fmt::print(stderr, "adamas: error: unknown command '{}' (commands: {}; see --help)\n", argv[1],
               names);
    return 1;
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const adamas::Error& e) {
    fmt::print(stderr, "adamas: error: {}\n", e.what());
    return 1;
  } catch (const std::bad_alloc&) {
    fmt::print(stderr,
               "adamas: error: out of memory (a context, batch or budget too large for this "
               "machine?)\n");
    return 1;
  } catch (const std::filesystem::filesystem_error& e) {
    fmt::print(stderr, "adamas: error: {}\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    // Not an expected failure: say so, but as a message and an exit status, never an abort.
    fmt::print(stderr, "adamas: internal error: {}\n", e.what());
    return 2;
  }
  return status;
}
