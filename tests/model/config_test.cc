// config.json parsing: the supported architectures and RoPE types, and errors that name the field.
#include "adamas/model/config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>

#include "adamas/common/error.h"
#include "model_test_util.h"

namespace adamas::model::test {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

std::string error_of(const std::string& json) {
  try {
    parse_config(json, "cfg.json");
  } catch (const Error& e) {
    return e.what();
  }
  return "<no error>";
}

TEST(Config, ParsesLlamaWithGqaAndLlama3Rope) {
  TinySpec s;
  s.rope_scaling = R"({"rope_type":"llama3","factor":8.0,"low_freq_factor":1.0,
      "high_freq_factor":4.0,"original_max_position_embeddings":8192})";
  const ModelConfig c = parse_config(tiny_config_json(s));
  EXPECT_EQ(c.model_type, "llama");
  EXPECT_EQ(c.num_heads, 4);
  EXPECT_EQ(c.num_kv_heads, 2);
  EXPECT_EQ(c.head_dim, 16);
  EXPECT_EQ(c.rope.type, RopeType::kLlama3);
  EXPECT_DOUBLE_EQ(c.rope.factor, 8.0);
  EXPECT_EQ(c.rope.original_max_position_embeddings, 8192);
  EXPECT_FALSE(c.qkv_bias);
  EXPECT_EQ(c.eos_token_ids, std::vector<int>{2});
}

TEST(Config, Qwen2HasQkvBiasButNoOutputBias) {
  TinySpec s;
  s.model_type = "qwen2";
  s.arch = "Qwen2ForCausalLM";
  s.rope_scaling = R"({"type":"linear","factor":2.0})";  // the pre-4.45 key
  const ModelConfig c = parse_config(tiny_config_json(s));
  EXPECT_TRUE(c.qkv_bias);
  EXPECT_FALSE(c.o_bias);
  EXPECT_EQ(c.rope.type, RopeType::kLinear);
}

TEST(Config, TransformersFiveRopeParameters) {
  const ModelConfig c = parse_config(
      R"({"model_type":"mistral","vocab_size":10,"hidden_size":64,"intermediate_size":8,
          "num_hidden_layers":1,"num_attention_heads":2,"num_key_value_heads":1,
          "sliding_window":4096,"eos_token_id":[2,3],
          "rope_parameters":{"rope_type":"linear","rope_theta":1e6,"factor":4.0}})");
  EXPECT_EQ(c.architecture, "MistralForCausalLM");
  EXPECT_EQ(c.head_dim, 32);
  EXPECT_DOUBLE_EQ(c.rope.theta, 1e6);
  EXPECT_EQ(c.rope.type, RopeType::kLinear);
  EXPECT_EQ(c.sliding_window, 4096);
  EXPECT_EQ(c.eos_token_ids, (std::vector<int>{2, 3}));
}

TEST(Config, ErrorsNameTheProblem) {
  TinySpec s;
  std::string j = tiny_config_json(s);
  auto with = [&](const std::string& from, const std::string& to) {
    std::string out = j;
    const size_t at = out.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    return out.replace(at, from.size(), to);
  };
  EXPECT_THAT(
      error_of(with("\"model_type\":\"llama\"", "\"model_type\":\"gpt2\"")),
      AllOf(HasSubstr("cfg.json"), HasSubstr("unsupported architecture"), HasSubstr("gpt2")));
  EXPECT_THAT(error_of(with("LlamaForCausalLM", "FalconForCausalLM")),
              HasSubstr("FalconForCausalLM"));
  EXPECT_THAT(error_of(with("\"rope_scaling\":null", "\"rope_scaling\":{\"rope_type\":\"yarn\"}")),
              AllOf(HasSubstr("rope_scaling"), HasSubstr("yarn")));
  EXPECT_THAT(error_of(with("\"vocab_size\":96,", "")), HasSubstr("missing field 'vocab_size'"));
  EXPECT_THAT(error_of(with("\"head_dim\":16", "\"head_dim\":24")),
              AllOf(HasSubstr("head_dim"), HasSubstr("24")));
  EXPECT_THAT(error_of(with("\"num_key_value_heads\":2", "\"num_key_value_heads\":3")),
              HasSubstr("multiple of num_key_value_heads (3)"));
  EXPECT_THAT(error_of(with("\"hidden_act\":\"silu\"", "\"hidden_act\":\"gelu\"")),
              HasSubstr("gelu"));
  EXPECT_THAT(error_of("{not json"), HasSubstr("not valid JSON"));
  EXPECT_THAT(error_of(with("\"hidden_size\":64", "\"hidden_size\":\"64\"")),
              HasSubstr("'hidden_size' must be an integer"));
}

// The error of parsing the tiny config after `edit` changed its JSON.
template <class F>
std::string error_with(F&& edit) {
  nlohmann::json j = nlohmann::json::parse(tiny_config_json(TinySpec{}));
  edit(j);
  return error_of(j.dump());
}

// Read as 64 bits and range-checked: nlohmann's get<int> would wrap 10^12 to a negative number
// and 4294967300 to 4.
TEST(Config, IntegerFieldsAreRangeChecked) {
  EXPECT_THAT(error_with([](auto& j) { j["max_position_embeddings"] = 1000000000000LL; }),
              AllOf(HasSubstr("cfg.json"), HasSubstr("'max_position_embeddings'"),
                    HasSubstr("[0, 2147483647], got 1000000000000")));
  EXPECT_EQ(error_with([](auto& j) { j["max_position_embeddings"] = 2147483647; }), "<no error>");
  EXPECT_THAT(error_with([](auto& j) { j["num_attention_heads"] = 4294967300LL; }),
              HasSubstr("'num_attention_heads' must be an integer in [1, 65536], got 4294967300"));
  EXPECT_THAT(error_with([](auto& j) { j["num_hidden_layers"] = 0; }),
              HasSubstr("'num_hidden_layers' must be an integer in [1, 65536], got 0"));
  EXPECT_THAT(error_with([](auto& j) { j["hidden_size"] = -64; }),
              HasSubstr("'hidden_size' must be an integer in [1, 1048576], got -64"));
  EXPECT_THAT(
      error_with([](auto& j) { j["vocab_size"] = 18446744073709551615ULL; }),
      HasSubstr("'vocab_size' must be an integer in [1, 16777216], got 18446744073709551615"));
  EXPECT_THAT(error_with([](auto& j) { j["intermediate_size"] = 1LL << 40; }),
              HasSubstr("'intermediate_size' must be an integer in [1, 1048576]"));
  EXPECT_THAT(error_with([](auto& j) { j["num_key_value_heads"] = 0; }),
              HasSubstr("'num_key_value_heads' must be an integer in [1, 65536], got 0"));
  EXPECT_THAT(error_with([](auto& j) { j["head_dim"] = -16; }),
              HasSubstr("'head_dim' must be an integer in [1, 1048576], got -16"));
  EXPECT_THAT(error_with([](auto& j) { j["num_hidden_layers"] = 3.0; }),
              HasSubstr("'num_hidden_layers' must be an integer, got 3.0"));
  // Without head_dim it is hidden_size / num_attention_heads, which must divide exactly.
  EXPECT_THAT(error_with([](auto& j) {
                j.erase("head_dim");
                j["hidden_size"] = 66;
              }),
              HasSubstr("hidden_size (66) must be a multiple of num_attention_heads (4)"));
  EXPECT_THAT(error_with([](auto& j) { j["bos_token_id"] = 4294967297LL; }),
              HasSubstr("'bos_token_id' must be an integer in [-1, 2147483647]"));
  EXPECT_THAT(
      error_with([](auto& j) {
        j["eos_token_id"] = {2, 1099511627778LL};
      }),
      HasSubstr("'eos_token_id' must be an integer in [-1, 2147483647], got 1099511627778"));
  EXPECT_THAT(error_with([](auto& j) {
                j["model_type"] = "mistral";
                j["architectures"] = {"MistralForCausalLM"};
                j["sliding_window"] = -4096;
              }),
              HasSubstr("'sliding_window' must be an integer in [0, 2147483647], got -4096"));
  EXPECT_THAT(
      error_with([](auto& j) {
        j["rope_scaling"] = {{"rope_type", "llama3"},
                             {"factor", 8.0},
                             {"original_max_position_embeddings", 1LL << 32}};
      }),
      HasSubstr("'original_max_position_embeddings' must be an integer in [1, 2147483647]"));
}

TEST(Config, RealFieldsMustBeFiniteAndPositive) {
  EXPECT_THAT(error_with([](auto& j) { j["rope_theta"] = 0; }),
              AllOf(HasSubstr("cfg.json"), HasSubstr("rope_theta must be a finite number > 0"),
                    HasSubstr("got 0")));
  EXPECT_THAT(error_with([](auto& j) { j["rope_theta"] = -10000.0; }),
              HasSubstr("rope_theta must be a finite number > 0, got -10000.0"));
  EXPECT_THAT(error_with([](auto& j) { j["rope_theta"] = "big"; }),
              HasSubstr("rope_theta must be a number, got \"big\""));
  EXPECT_THAT(error_with([](auto& j) {
                j["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", -1.0}};
              }),
              HasSubstr("rope_parameters.rope_theta must be a finite number > 0"));
  EXPECT_THAT(error_with([](auto& j) { j["rms_norm_eps"] = 0.0; }),
              HasSubstr("rms_norm_eps must be a finite number > 0, got 0.0"));
  EXPECT_THAT(error_with([](auto& j) { j["rms_norm_eps"] = -1e-6; }),
              HasSubstr("rms_norm_eps must be a finite number > 0"));
  // Positive as a double, but 0 or inf as the float the runtime keeps.
  EXPECT_THAT(error_with([](auto& j) { j["rms_norm_eps"] = 1e-50; }),
              HasSubstr("rms_norm_eps must be a finite number > 0 that fits a float, got 1e-50"));
  EXPECT_THAT(error_with([](auto& j) { j["rms_norm_eps"] = 1e300; }),
              HasSubstr("rms_norm_eps must be a finite number > 0 that fits a float"));
  EXPECT_THAT(error_with([](auto& j) {
                j["rope_scaling"] = {{"type", "linear"}, {"factor", 0}};
              }),
              HasSubstr("rope_scaling.factor must be a finite number > 0, got 0"));
  EXPECT_THAT(
      error_with([](auto& j) {
        j["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", 8.0}, {"low_freq_factor", 0.0}};
      }),
      HasSubstr("rope_scaling.low_freq_factor must be a finite number > 0"));
  // validate() checks configs built in code too.
  ModelConfig c = parse_config(tiny_config_json(TinySpec{}));
  c.rms_norm_eps = std::numeric_limits<float>::infinity();
  EXPECT_THAT(test_error([&] { c.validate(); }),
              HasSubstr("rms_norm_eps must be a finite number > 0, got inf"));
  c = parse_config(tiny_config_json(TinySpec{}));
  c.rope.theta = std::nan("");
  EXPECT_THAT(test_error([&] { c.validate(); }),
              HasSubstr("rope_theta must be a finite number > 0, got nan"));
  c = parse_config(tiny_config_json(TinySpec{}));
  c.max_position_embeddings = -1;
  EXPECT_THAT(test_error([&] { c.validate(); }),
              HasSubstr("max_position_embeddings must be in [0, 2147483647], got -1"));
}

TEST(Config, LoadsGenerationConfigEosIds) {
  TempDir dir;
  write_text(dir.path / "config.json", tiny_config_json(TinySpec{}));
  write_text(dir.path / "generation_config.json", R"({"eos_token_id":[2,9]})");
  EXPECT_EQ(load_config(dir.path).eos_token_ids, (std::vector<int>{2, 9}));
  // An id that does not fit an int is an error, not a wrapped id.
  write_text(dir.path / "generation_config.json", R"({"eos_token_id":[2,4294967298]})");
  EXPECT_THAT(test_error([&] { load_config(dir.path); }),
              AllOf(HasSubstr("generation_config.json"), HasSubstr("'eos_token_id'"),
                    HasSubstr("got 4294967298")));
  TempDir empty;
  EXPECT_THAT(test_error([&] { load_config(empty.path); }), HasSubstr("config.json not found"));
}

// Error messages quote the offending value with dump(), which recurses: 100000 nested arrays
// overflowed the stack. Deeper than 128 levels is refused before parsing.
TEST(Config, DeeplyNestedJsonIsRefused) {
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  EXPECT_THAT(error_of(R"({"model_type":"llama","rope_theta":)" + deep + "}"),
              AllOf(HasSubstr("cfg.json"), HasSubstr("nested deeper than 128 levels")));
  // generation_config.json that is not JSON is ignored, nested too deep included.
  TempDir dir;
  write_text(dir.path / "config.json", tiny_config_json(TinySpec{}));
  write_text(dir.path / "generation_config.json", R"({"eos_token_id":)" + deep + "}");
  EXPECT_EQ(load_config(dir.path).eos_token_ids,
            parse_config(tiny_config_json(TinySpec{})).eos_token_ids);
}

}  // namespace
}  // namespace adamas::model::test
