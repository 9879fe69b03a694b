// config.json parsing: the supported architectures and RoPE types, and errors that name the field.
#include "adamas/model/config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

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

TEST(Config, LoadsGenerationConfigEosIds) {
  TempDir dir;
  write_text(dir.path / "config.json", tiny_config_json(TinySpec{}));
  write_text(dir.path / "generation_config.json", R"({"eos_token_id":[2,9]})");
  EXPECT_EQ(load_config(dir.path).eos_token_ids, (std::vector<int>{2, 9}));
  TempDir empty;
  EXPECT_THAT(test_error([&] { load_config(empty.path); }), HasSubstr("config.json not found"));
}

}  // namespace
}  // namespace adamas::model::test
