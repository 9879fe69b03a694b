// The input as config.json, and, after its first NUL byte when there is one, generation_config.json
// of the same model directory: parse_config on the text and load_config on the directory. An
// accepted config must pass validate(), describe() and agree with the directory load.
#include <algorithm>
#include <cmath>

#include "adamas/model/config.h"
#include "fuzz_util.h"

namespace {

namespace fs = std::filesystem;
using namespace adamas::model;

void check_config(const ModelConfig& c) {
  c.validate();  // throws adamas::Error, which would be a finding here: caught below
  (void)c.describe();
  FUZZ_CHECK(c.model_type == "llama" || c.model_type == "mistral" || c.model_type == "qwen2",
             "model_type " + c.model_type);
  FUZZ_CHECK(!c.architecture.empty(), "architecture");
  FUZZ_CHECK(c.vocab_size >= 1 && c.hidden_size >= 1 && c.intermediate_size >= 1 &&
                 c.num_layers >= 1 && c.num_heads >= 1 && c.num_kv_heads >= 1,
             "sizes");
  FUZZ_CHECK(c.num_heads % c.num_kv_heads == 0, "GQA groups");
  // Products the runtime forms must fit an int (config.cc's range comment).
  FUZZ_CHECK(int64_t(c.num_heads) * c.head_dim <= INT32_MAX, "heads * head_dim");
  FUZZ_CHECK(std::isfinite(c.rms_norm_eps) && c.rms_norm_eps > 0, "rms_norm_eps");
  FUZZ_CHECK(std::isfinite(c.rope.theta) && c.rope.theta > 0, "rope_theta");
  FUZZ_CHECK(std::isfinite(c.rope.factor) && c.rope.factor > 0, "rope factor");
  if (c.rope.type == RopeType::kLlama3) {
    FUZZ_CHECK(std::isfinite(c.rope.low_freq_factor) && c.rope.low_freq_factor > 0 &&
                   std::isfinite(c.rope.high_freq_factor) &&
                   c.rope.high_freq_factor > c.rope.low_freq_factor,
               "llama3 factors");
    FUZZ_CHECK(c.rope.original_max_position_embeddings >= 1, "original_max_position_embeddings");
  }
  FUZZ_CHECK(c.max_position_embeddings >= 0 && c.sliding_window >= 0, "positions");
  FUZZ_CHECK(c.bos_token_id >= -1, "bos_token_id");
  for (int id : c.eos_token_ids) FUZZ_CHECK(id >= -1, "eos_token_id");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input = adamas::fuzz::as_text(data, size);
  const size_t nul = input.find('\0');
  const std::string_view config = input.substr(0, nul);
  const bool has_gen = nul != std::string_view::npos;
  const std::string_view gen = has_gen ? input.substr(nul + 1) : std::string_view();

  static const fs::path dir = [] {
    const fs::path d = adamas::fuzz::scratch_dir() / "model";
    fs::create_directories(d);
    return d;
  }();
  adamas::fuzz::write_file(dir / "config.json", config);
  if (has_gen)
    adamas::fuzz::write_file(dir / "generation_config.json", gen);
  else
    fs::remove(dir / "generation_config.json");

  ModelConfig parsed;
  const bool parsed_ok = adamas::fuzz::accepts([&] { parsed = parse_config(config, "fuzz.json"); });
  if (parsed_ok) {
    const bool valid = adamas::fuzz::accepts([&] { check_config(parsed); });
    FUZZ_CHECK(valid, "parse_config returned a config that validate() rejects");
  }
  ModelConfig loaded;
  const bool loaded_ok = adamas::fuzz::accepts([&] { loaded = load_config(dir); });
  if (loaded_ok) {
    FUZZ_CHECK(parsed_ok, "load_config accepted what parse_config rejected");
    FUZZ_CHECK(loaded.describe() == parsed.describe(), "load_config and parse_config differ");
    // generation_config.json only adds eos ids (without duplicates).
    for (int id : parsed.eos_token_ids)
      FUZZ_CHECK(std::find(loaded.eos_token_ids.begin(), loaded.eos_token_ids.end(), id) !=
                     loaded.eos_token_ids.end(),
                 "an eos id of config.json lost");
    if (!has_gen) FUZZ_CHECK(loaded.eos_token_ids == parsed.eos_token_ids, "eos ids");
  } else if (parsed_ok) {
    FUZZ_CHECK(has_gen, "load_config rejected a config.json that parse_config accepts");
  }
  return 0;
}
