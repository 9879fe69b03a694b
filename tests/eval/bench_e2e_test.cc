// `adamas bench-e2e` in small on the shipped model (the CPU Session), and the --device checks that
// every model command shares: rows complete and finite, the CSV whole and parseable, the byte
// floor and FLOP formulas against hand counts, and bad flags refused before any work, naming
// the flag. No timing assertions.
#include "bench_e2e.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "adamas/common/error.h"
#include "adamas/model/llama.h"
#include "eval/common.h"

namespace adamas::cli {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
const fs::path kRoot = ADAMAS_SOURCE_DIR;
const fs::path kTiny = kRoot / "models" / "adamas-tiny-8k";

// Splits one CSV line (fields in double quotes may hold commas; "" is a quote).
std::vector<std::string> csv_fields(const std::string& line) {
  std::vector<std::string> fields(1);
  bool quoted = false;
  for (size_t i = 0; i < line.size(); ++i) {
    const char ch = line[i];
    if (quoted && ch == '"' && i + 1 < line.size() && line[i + 1] == '"') {
      fields.back() += '"';
      ++i;
    } else if (ch == '"') {
      quoted = !quoted;
    } else if (ch == ',' && !quoted) {
      fields.emplace_back();
    } else {
      fields.back() += ch;
    }
  }
  return fields;
}

BenchE2eOptions tiny_options(const fs::path& csv) {
  BenchE2eOptions o;
  o.model = kTiny.string();
  o.device = "cpu";
  o.contexts = "256";
  o.batches = "1,2";
  o.budget = 64;  // sparse at context 256
  o.decode_steps = 2;
  o.threads = 2;
  o.csv = csv.string();
  return o;
}

TEST(BenchE2e, RunsOnTheShippedModelAndWritesAWholeCsv) {
  const fs::path dir = fs::temp_directory_path() / ("adamas_bench_e2e_" + std::to_string(getpid()));
  fs::create_directories(dir);
  const fs::path csv = dir / "e2e.csv";
  const BenchE2eResult r = run_bench_e2e(tiny_options(csv), nullptr);

  EXPECT_EQ(r.device, "cpu");
  EXPECT_GT(r.copy_gbps, 0);
  EXPECT_TRUE(r.skipped.empty());
  ASSERT_EQ(r.rows.size(), 4u);  // (batch 1, 2) × (full, adamas)
  for (const BenchE2eRow& w : r.rows) {
    SCOPED_TRACE(w.policy + " batch " + std::to_string(w.batch));
    EXPECT_EQ(w.context, 256);
    for (double v : {w.prefill_tok_s, w.prefill_tflops, w.decode_ms, w.decode_tok_s, w.floor_ms,
                     w.x_floor, w.speedup, w.weight_bytes, w.kv_bytes}) {
      EXPECT_TRUE(std::isfinite(v));
      EXPECT_GT(v, 0);
    }
    EXPECT_NEAR(w.decode_tok_s, w.batch * 1e3 / w.decode_ms, 1e-6 * w.decode_tok_s);
    EXPECT_NEAR(w.x_floor, w.decode_ms / w.floor_ms, 1e-9 * w.x_floor);
  }
  EXPECT_EQ(r.rows[0].policy, "full");
  EXPECT_EQ(r.rows[0].budget, 0);
  EXPECT_EQ(r.rows[0].speedup, 1.0);
  EXPECT_EQ(r.rows[1].policy, "adamas");
  EXPECT_EQ(r.rows[1].budget, 64);
  EXPECT_LT(r.rows[1].kv_bytes, r.rows[0].kv_bytes);  // sparse layers read less
  EXPECT_LT(r.rows[1].floor_ms, r.rows[0].floor_ms);
  EXPECT_DOUBLE_EQ(r.rows[2].kv_bytes, 2 * r.rows[0].kv_bytes);  // batch 2: twice the K/V

  // The CSV: the header and one line per row, every field present; no temporary file left.
  EXPECT_FALSE(fs::exists(csv.string() + ".partial"));
  std::ifstream in(csv);
  std::string line;
  ASSERT_TRUE(std::getline(in, line));
  const auto header = csv_fields(line);
  ASSERT_EQ(header.size(), 28u);
  EXPECT_EQ(header[0], "date");
  EXPECT_EQ(header[14], "decode_ms");
  EXPECT_EQ(header[25], "floor_gbps");
  int n = 0;
  while (std::getline(in, line)) {
    const auto f = csv_fields(line);
    ASSERT_EQ(f.size(), header.size()) << line;
    EXPECT_EQ(f[1], "cpu");
    EXPECT_EQ(f[2], kTiny.string());
    EXPECT_EQ(f[3], "llama L6 h512 H4/2x128 ff1024 V8192 tied");
    for (size_t i : {6, 7, 8, 12, 13, 14, 15, 16, 17, 18, 19, 20})
      EXPECT_GT(std::stod(f[i]), 0) << header[i] << " in " << line;
    ++n;
  }
  EXPECT_EQ(n, 4);
  fs::remove_all(dir);
}

// The byte floor's and the FLOP count's formulas, by hand on the shipped model's shape: 6 layers,
// hidden 512, 4 query / 2 KV heads × 128, intermediate 1024, vocab 8192 (tied), bf16 weights.
TEST(BenchE2e, FloorAndFlopFormulas) {
  const auto model = model::LlamaModel::load(kTiny);
  const double layer_params = 512.0 * 512 * 2 + 256.0 * 512 * 2 + 1024.0 * 512 * 3;
  EXPECT_DOUBLE_EQ(decode_weight_bytes(*model, model::Device::kCpu, false),
                   2 * (6 * layer_params + 8192.0 * 512 + 512));
  EXPECT_DOUBLE_EQ(prefill_flops(*model, 10),
                   2 * 6 * layer_params * 10 + 4.0 * 128 * 4 * 6 * 55 + 2.0 * 8192 * 512);

  const auto& c = model->config();
  const double L = 1000, dense_layer = 2 * L * 2 * 128 * 2;  // K and V, f16
  EXPECT_DOUBLE_EQ(decode_kv_bytes(c, parse_policy("full"), 1000, DType::kF16, 64),
                   6 * dense_layer);
  // 2 dense layers, then key codes (2 bits) + the 64 selected tokens' K/V per query head.
  const double codes = L * 2 * 128 * 2 / 8;
  EXPECT_DOUBLE_EQ(decode_kv_bytes(c, parse_policy("adamas:budget=64"), 1000, DType::kF16, 64),
                   2 * dense_layer + 4 * (codes + 64.0 * 4 * 128 * 2 * 2));
  EXPECT_DOUBLE_EQ(
      decode_kv_bytes(c, parse_policy("adamas:budget=64,gqa=shared"), 1000, DType::kF16, 64),
      2 * dense_layer + 4 * (codes + 64.0 * 2 * 128 * 2 * 2));
  // budget ≥ length: dense everywhere.
  EXPECT_DOUBLE_EQ(decode_kv_bytes(c, parse_policy("adamas:budget=1000"), 1000, DType::kF16, 64),
                   6 * dense_layer);
}

TEST(BenchE2e, PolicySpecsAndOverrides) {
  BenchE2eOptions o = tiny_options(fs::temp_directory_path() / "unused.csv");
  o.policies = "full,adamas:gqa=shared,bits=3;adamas:bits=3,budget=32,quest";
  o.budget = 128;
  o.dense_layers = 1;
  const BenchE2ePlan plan = plan_bench_e2e(o);
  ASSERT_EQ(plan.policies.size(), 4u);
  EXPECT_EQ(plan.policies[1].label, "adamas:gqa=shared,bits=3");
  EXPECT_EQ(plan.policies[1].config.gqa, GqaMode::kGroupShared);
  EXPECT_EQ(plan.policies[1].config.bits, 3);
  EXPECT_EQ(plan.policies[1].config.budget, 128);  // --budget
  EXPECT_EQ(plan.policies[1].config.dense_layers, 1);
  EXPECT_EQ(plan.policies[2].config.budget, 32);  // the spec's own
  EXPECT_EQ(plan.policies[3].label, "quest");
  EXPECT_EQ(plan.cache_policy.bits, 3);
  EXPECT_EQ(plan.kv_dtype, DType::kF16);
  EXPECT_EQ(plan.prefill_chunk, 256);  // cpu default
  EXPECT_EQ(plan.max_kv_gib, 8);
  o.contexts = "2K,4096";
  EXPECT_EQ(plan_bench_e2e(o).contexts, (std::vector<int>{2048, 4096}));
}

// Sets one flag the way the command line does (the flags whose errors are tested).
void set_flag(BenchE2eOptions& o, const std::string& flag, const std::string& v) {
  if (flag == "--batches") o.batches = v;
  if (flag == "--contexts") o.contexts = v;
  if (flag == "--device") o.device = v;
  if (flag == "--kv-dtype") o.kv_dtype = v;
  if (flag == "--policies") o.policies = v;
  if (flag == "--model") o.model = v;
  if (flag == "--csv") o.csv = v;
  if (flag == "--decode-steps") o.decode_steps = std::stoi(v);
  if (flag == "--budget") o.budget = std::stoi(v);
  if (flag == "--dense-layers") o.dense_layers = std::stoi(v);
  if (flag == "--page-size") o.page_size = std::stoi(v);
  if (flag == "--prefill-chunk") o.prefill_chunk = std::stoi(v);
  if (flag == "--max-kv-gib") o.max_kv_gib = std::stod(v);
}

TEST(BenchE2e, BadFlagsFailNamingTheFlag) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"--batches", "0"},
      {"--batches", ""},
      {"--contexts", "abc"},
      {"--contexts", "256,12x"},
      {"--contexts", "9000"},  // beyond the model's 8192 positions
      {"--device", "tpu"},
      {"--kv-dtype", "f8"},
      {"--decode-steps", "0"},
      {"--budget", "0"},
      {"--dense-layers", "-1"},
      {"--page-size", "0"},
      {"--prefill-chunk", "-4"},
      {"--max-kv-gib", "-1"},
      {"--policies", "full,nonsense"},
      {"--policies", "adamas:bits=5"},
      {"--policies", "adamas,adamas:bits=3"},  // two key-code layouts
      {"--policies", ""},
      {"--model", ""},
      {"--model", "/nonexistent/model"},
      {"--csv", "/nonexistent/dir/out.csv"},
  };
  for (const auto& [flag, value] : cases) {
    BenchE2eOptions o = tiny_options(fs::temp_directory_path() / "unused.csv");
    set_flag(o, flag, value);
    try {
      plan_bench_e2e(o);
      ADD_FAILURE() << "no error for " << flag << " '" << value << "'";
    } catch (const Error& e) {
      EXPECT_THAT(e.what(), HasSubstr(flag)) << "for '" << value << "'";
    }
  }
  if (!model::cuda_runtime_available()) {
    BenchE2eOptions o = tiny_options(fs::temp_directory_path() / "unused.csv");
    o.device = "cuda";
    EXPECT_THROW(plan_bench_e2e(o), Error);
  }
}

// What --device checks in every model command (generate, demo, eval, bench-e2e).
TEST(DeviceChecks, PoliciesAndDtypesPerDevice) {
  using model::Device;
  try {
    eval::choose_device("tpu");
    ADD_FAILURE() << "tpu accepted";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("--device"));
    EXPECT_THAT(e.what(), HasSubstr("tpu"));
  }
  EXPECT_EQ(eval::choose_device("cpu").device, Device::kCpu);
  EXPECT_EQ(eval::choose_device("cpu").describe(), "device: cpu");
  if (!model::cuda_runtime_available()) {
    EXPECT_THROW(eval::choose_device("cuda"), Error);
    const auto a = eval::choose_device("auto");
    EXPECT_EQ(a.device, Device::kCpu);
    EXPECT_THAT(a.describe(), HasSubstr("auto: "));
  }
  for (const char* p : {"full", "adamas", "oracle", "quest", "streaming"})
    EXPECT_EQ(model::unsupported_reason(Device::kCpu, parse_policy(p)), "") << p;
  EXPECT_EQ(model::unsupported_reason(Device::kCuda, parse_policy("adamas:gqa=shared")), "");
  EXPECT_THAT(model::unsupported_reason(Device::kCuda, parse_policy("quest")),
              HasSubstr("--device cpu"));

  std::string left_out;
  const auto kept = eval::specs_for_device(Device::kCuda, {"full", "oracle", "adamas", "quest"},
                                           false, "--policies", &left_out);
  EXPECT_EQ(kept, (std::vector<std::string>{"full", "adamas"}));
  EXPECT_EQ(left_out, "oracle, quest");
  try {
    eval::specs_for_device(Device::kCuda, {"full", "streaming"}, true, "--policies", nullptr);
    ADD_FAILURE() << "streaming accepted on cuda";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("--policies"));
    EXPECT_THAT(e.what(), HasSubstr("streaming"));
  }
  EXPECT_THROW(eval::check_kv_dtype_on_device(Device::kCuda, DType::kF32, "--kv-dtype"), Error);
  EXPECT_NO_THROW(eval::check_kv_dtype_on_device(Device::kCuda, DType::kBF16, "--kv-dtype"));
  EXPECT_NO_THROW(eval::check_kv_dtype_on_device(Device::kCpu, DType::kF32, "--kv-dtype"));
}

}  // namespace
}  // namespace adamas::cli
