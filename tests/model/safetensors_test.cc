// safetensors reading and weight loading: views of the right bytes, shards, and errors that name
// the file and tensor (missing, misshaped, wrong dtype, corrupt header, out-of-range offsets).
#include "adamas/model/safetensors.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "adamas/model/llama.h"
#include "adamas/model/weights.h"
#include "model_test_util.h"

namespace adamas::model::test {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

TEST(Safetensors, ReadsTensorsAndMetadata) {
  TempDir dir;
  std::map<std::string, RawTensor> ts;
  ts["a"] = float_tensor({1.5f, -2.f, 3.f, 4.f, 5.f, 6.f}, {2, 3});
  ts["b"] = float_tensor({0.25f, 8.f}, {2}, "BF16");
  write_safetensors(dir.path / "x.safetensors", ts);
  SafetensorsFile f(dir.path / "x.safetensors");
  ASSERT_EQ(f.tensors().size(), 2u);
  const TensorView& a = f.tensors().at("a");
  EXPECT_EQ(a.type, TensorType::kF32);
  EXPECT_EQ(a.shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(reinterpret_cast<const float*>(a.data)[3], 4.f);
  const TensorView& b = f.tensors().at("b");
  EXPECT_EQ(b.type, TensorType::kBF16);
  EXPECT_EQ(bf16_to_f32(reinterpret_cast<const uint16_t*>(b.data)[1]), 8.f);
}

std::string header_error(const std::string& header, size_t data_bytes = 8) {
  TempDir dir;
  std::map<std::string, RawTensor> ts;
  ts["pad"] = RawTensor{"U8", {int64_t(data_bytes)}, std::vector<uint8_t>(data_bytes)};
  write_safetensors(dir.path / "bad.safetensors", ts, header);
  return test_error([&] { SafetensorsFile f(dir.path / "bad.safetensors"); });
}

TEST(Safetensors, CorruptHeadersAreNamed) {
  EXPECT_THAT(header_error("{\"t\": [1, 2"),
              AllOf(HasSubstr("bad.safetensors"), HasSubstr("corrupt safetensors header")));
  EXPECT_THAT(header_error(R"({"t":{"dtype":"F32","shape":[4],"data_offsets":[0,64]}})"),
              AllOf(HasSubstr("'t'"), HasSubstr("outside the data section")));
  EXPECT_THAT(header_error(R"({"t":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})"),
              AllOf(HasSubstr("'t'"), HasSubstr("needs 12 bytes")));
  EXPECT_THAT(header_error(R"({"t":{"dtype":"F32","shape":[2]}})"),
              HasSubstr("needs dtype, shape and data_offsets"));
  EXPECT_THAT(header_error(R"({"t":{"dtype":"Q4","shape":[2],"data_offsets":[0,8]}})"),
              HasSubstr("unknown dtype 'Q4'"));
  // Header length larger than the file.
  TempDir dir;
  const uint64_t huge = 1 << 20;
  write_text(dir.path / "short.safetensors",
             std::string(reinterpret_cast<const char*>(&huge), 8) + "{}");
  EXPECT_THAT(test_error([&] { SafetensorsFile f(dir.path / "short.safetensors"); }),
              HasSubstr("exceeds the file"));
  write_text(dir.path / "tiny.safetensors", "abc");
  EXPECT_THAT(test_error([&] { SafetensorsFile f(dir.path / "tiny.safetensors"); }),
              HasSubstr("shorter than the 8-byte header"));
}

TEST(Weights, MissingMisshapedAndWrongDtypeTensorsAreNamed) {
  const TinySpec spec;
  const ModelConfig c = parse_config(tiny_config_json(spec));
  auto load_with = [&](auto edit) {
    TempDir dir;
    auto ts = tiny_tensors(spec);
    edit(ts);
    write_safetensors(dir.path / "model.safetensors", ts);
    return test_error([&] { load_weights(c, std::make_shared<const TensorStore>(dir.path)); });
  };
  EXPECT_THAT(load_with([](auto& ts) { ts.erase("model.layers.1.mlp.up_proj.weight"); }),
              AllOf(HasSubstr("missing tensor"), HasSubstr("model.layers.1.mlp.up_proj.weight")));
  EXPECT_THAT(load_with([](auto& ts) {
                ts["model.layers.2.self_attn.k_proj.weight"] =
                    float_tensor(std::vector<float>(64 * 16), {16, 64});
              }),
              AllOf(HasSubstr("model.layers.2.self_attn.k_proj.weight"),
                    HasSubstr("shape [16, 64], expected [32, 64]")));
  EXPECT_THAT(load_with([](auto& ts) {
                ts["model.norm.weight"] = RawTensor{"I32", {64}, std::vector<uint8_t>(256)};
              }),
              AllOf(HasSubstr("model.norm.weight"), HasSubstr("dtype I32")));
  EXPECT_THAT(load_with([](auto& ts) { ts.erase("lm_head.weight"); }),
              HasSubstr("missing tensor 'lm_head.weight'"));
  EXPECT_EQ(load_with([](auto&) {}), "<no exception>");
}

TEST(Weights, QwenBiasIsRequiredAndTiedHeadIsTheEmbedding) {
  TinySpec spec;
  spec.model_type = "qwen2";
  spec.arch = "Qwen2ForCausalLM";
  spec.qkv_bias = true;
  spec.tie = true;
  TempDir dir;
  write_tiny_model(dir.path, spec);
  const ModelConfig c = load_config(dir.path);
  const ModelWeights w = load_weights(c, std::make_shared<const TensorStore>(dir.path));
  EXPECT_EQ(w.lm_head.data, w.embed.data);
  EXPECT_EQ(w.layers[0].k_bias.size(), 32u);
  EXPECT_TRUE(w.layers[0].o_bias.empty());
  auto ts = tiny_tensors(spec);
  ts.erase("model.layers.0.self_attn.v_proj.bias");
  write_safetensors(dir.path / "model.safetensors", ts);
  EXPECT_THAT(test_error([&] { LlamaModel::load(dir.path); }),
              HasSubstr("model.layers.0.self_attn.v_proj.bias"));
}

// A sharded checkpoint (index + 2 files) loads the same tensors; a missing shard is named.
TEST(Weights, ShardedCheckpoint) {
  const TinySpec spec;
  TempDir dir;
  write_text(dir.path / "config.json", tiny_config_json(spec));
  auto ts = tiny_tensors(spec);
  std::map<std::string, RawTensor> a, b;
  nlohmann::json map;
  int i = 0;
  for (auto& [name, t] : ts) {
    const bool first = i++ % 2 == 0;
    (first ? a : b)[name] = t;
    map[name] = first ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors";
  }
  write_safetensors(dir.path / "model-00001-of-00002.safetensors", a);
  write_safetensors(dir.path / "model-00002-of-00002.safetensors", b);
  write_text(dir.path / "model.safetensors.index.json",
             nlohmann::json{{"metadata", {}}, {"weight_map", map}}.dump());
  TensorStore store(dir.path);
  EXPECT_EQ(store.files().size(), 2u);
  EXPECT_EQ(store.names().size(), ts.size());
  EXPECT_NO_THROW(LlamaModel::load(dir.path));
  fs::remove(dir.path / "model-00002-of-00002.safetensors");
  EXPECT_THAT(test_error([&] { TensorStore s(dir.path); }),
              AllOf(HasSubstr("model-00002-of-00002.safetensors"), HasSubstr("missing")));
}

}  // namespace
}  // namespace adamas::model::test
