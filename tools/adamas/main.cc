// The adamas command-line tool.
#include <fmt/format.h>

#include <CLI/CLI.hpp>

#include "adamas/common/error.h"
#include "bench_command.h"
#include "bench_e2e_command.h"
#include "demo_command.h"
#include "eval_command.h"
#include "generate_command.h"
#include "inspect_command.h"
#include "recall_command.h"

int main(int argc, char** argv) {
  CLI::App app{"adamas: Hadamard sparse attention for long-context LLM decoding"};
  app.require_subcommand(1);
  int status = 0;
  adamas::cli::add_demo_command(app, status);
  adamas::cli::add_bench_command(app, status);
  adamas::cli::add_bench_e2e_command(app, status);
  adamas::cli::add_recall_command(app, status);
  adamas::cli::add_eval_command(app, status);
  adamas::cli::add_generate_command(app, status);
  adamas::cli::add_inspect_command(app, status);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const adamas::Error& e) {
    fmt::print(stderr, "adamas: error: {}\n", e.what());
    return 1;
  }
  return status;
}
