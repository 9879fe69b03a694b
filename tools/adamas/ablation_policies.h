// The policies and ablations that selection-quality runs compare by default (`adamas recall` on
// synthetic data, `adamas eval recall` on captured model data): the exact oracle, the paper's
// Adamas and its ablations (bits, Hadamard, L1/L2) with fixed and calibrated thresholds, GQA
// per-head and shared, and the baselines.
#pragma once

#include <string>
#include <vector>

namespace adamas::cli {

inline std::vector<std::string> ablation_policies() {
  return {
      "oracle",
      "oracle:gqa=shared",
      "adamas",
      "adamas:gqa=shared",
      "adamas:thresholds=calibrated",
      "adamas:thresholds=calibrated,gqa=shared",
      "adamas:hadamard=0",
      "adamas:bits=1",
      "adamas:bits=3",
      "adamas:dist=l2",
      "adamas:thresholds=calibrated,hadamard=0",
      "adamas:thresholds=calibrated,bits=1",
      "adamas:thresholds=calibrated,bits=3",
      "adamas:thresholds=calibrated,dist=l2",
      "quest",
      "quest:gqa=shared",
      "streaming",
  };
}

}  // namespace adamas::cli
