// `adamas bench-e2e`: end-to-end decode and prefill speed of a real model through the Session
// (bench_e2e.h holds the benchmark; this binds its flags).
#pragma once

namespace CLI {
class App;
}

namespace adamas::cli {

void add_bench_e2e_command(CLI::App& app, int& status);

}  // namespace adamas::cli
