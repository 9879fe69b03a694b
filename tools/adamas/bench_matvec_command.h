// `adamas bench-matvec`: the decode step's matrix products on the CPU (model::linear with 1-16
// rows, weights streamed from memory in their own dtype) against the host's read-only bandwidth
// and OpenBLAS sgemm on the same weights in fp32, measured in the same run.
#pragma once

#include <string>
#include <vector>

namespace CLI {
class App;
}

namespace adamas::cli {

struct BenchMatvecOptions {
  std::string model;  // take the product shapes from this checkpoint's config.json
  std::vector<int> rows{1, 2, 4, 8, 16};
  std::vector<std::string> dtypes{"bf16", "f16", "f32"};
  int threads = 0;
  int reps = 15;
  bool peer = true;  // also time OpenBLAS sgemm/sgemv on fp32 copies
  std::string csv = "adamas_bench_matvec.csv";
};

void add_bench_matvec_command(CLI::App& app, int& status);
int run_bench_matvec(const BenchMatvecOptions& options);

}  // namespace adamas::cli
