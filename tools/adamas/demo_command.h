// `adamas demo`: passkey retrieval with the shipped model, full attention beside sparse policies
// at a small budget, from one shared prefill.
#pragma once

#include <string>
#include <vector>

namespace CLI {
class App;
}

namespace adamas::cli {

struct DemoOptions {
  std::string model = "models/adamas-tiny-8k";
  int context = 8192;
  double depth = 0.5;
  int key = 0;  // 0: random (seeded)
  unsigned seed = 2026;
  int budget = 64;
  // The paper's Adamas, ours (calibrated thresholds, asymmetric estimate), and the baselines.
  std::vector<std::string> policies{"full", "adamas", "adamas:thresholds=calibrated,dist=ip",
                                    "quest", "streaming"};
  int page_size = 16;  // KV page = Quest's page: its paper's 16 tokens
  int threads = 0;
  std::string device = "auto";  // cpu | cuda | auto; policies the device cannot run are skipped
};

void add_demo_command(CLI::App& app, int& status);
int run_demo(const DemoOptions& options);

}  // namespace adamas::cli
