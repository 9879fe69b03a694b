// `adamas bench`: one layer's decode attention on the CPU, per stage, against dense attention.
#pragma once

#include <string>
#include <vector>

namespace CLI {
class App;
}

namespace adamas::cli {

struct BenchOptions {
  std::vector<int> contexts{4096, 8192, 16384, 32768, 65536, 131072};
  std::vector<int> budgets{64, 128, 256, 512, 1024, 2048, 4096};
  int heads = 32;
  int kv_heads = 32;
  int head_dim = 128;
  int batch = 1;
  int page_size = 64;
  int threads = 0;
  int reps = 7;
  std::string dtype = "f16";
  std::string policy = "adamas";
  std::string csv = "adamas_bench.csv";
  std::string isa;  // force a SIMD target by name
  bool flush = true;
};

// Registers the subcommand; its exit status goes to `status` when it runs.
void add_bench_command(CLI::App& app, int& status);
int run_bench(const BenchOptions& options);

}  // namespace adamas::cli
