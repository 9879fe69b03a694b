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

TEST(Safetensors, OverlapsDuplicatesEmptyNamesAndOverflowsAreRejected) {
  EXPECT_THAT(header_error(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},
                               "b":{"dtype":"U8","shape":[4],"data_offsets":[4,8]}})"),
              AllOf(HasSubstr("bad.safetensors"), HasSubstr("tensors 'a'"), HasSubstr("'b'"),
                    HasSubstr("([4, 8]) overlap")));
  // Empty tensors own no bytes: they may sit anywhere.
  EXPECT_EQ(header_error(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},
                             "e":{"dtype":"F32","shape":[0,3],"data_offsets":[4,4]}})"),
            "<no exception>");
  // nlohmann keeps the last of duplicate keys; the format forbids them.
  EXPECT_THAT(header_error(R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},
                               "t":{"dtype":"U8","shape":[8],"data_offsets":[0,8]}})"),
              AllOf(HasSubstr("bad.safetensors"), HasSubstr("duplicate key 't'")));
  EXPECT_THAT(header_error(R"({"t":{"dtype":"F32","shape":[2],"dtype":"U8",
                                    "data_offsets":[0,8]}})"),
              HasSubstr("duplicate key 'dtype' in 't'"));
  EXPECT_THAT(header_error(R"({"__metadata__":{"format":"pt","format":"np"}})"),
              HasSubstr("duplicate key 'format' in '__metadata__'"));
  EXPECT_THAT(header_error(R"({"":{"dtype":"U8","shape":[8],"data_offsets":[0,8]}})"),
              HasSubstr("a tensor has an empty name"));
  EXPECT_THAT(header_error(R"({"t":{"dtype":"U8","shape":[4294967296,4294967296],
                                    "data_offsets":[0,8]}})"),
              AllOf(HasSubstr("'t'"), HasSubstr("[4294967296,4294967296] has too many elements")));
  EXPECT_THAT(header_error(R"({"t":{"dtype":"U8","shape":[18446744073709551615],
                                    "data_offsets":[0,8]}})"),
              HasSubstr("the count overflows 64 bits"));
  EXPECT_THAT(header_error(R"({"t":{"dtype":"F32","shape":[4611686018427387904],
                                    "data_offsets":[0,8]}})"),
              AllOf(HasSubstr("'t'"), HasSubstr("the size overflows 64 bits")));
  // A directory named like a shard: said so (mmap would fail with "No such device").
  TempDir dir;
  fs::create_directories(dir.path / "d.safetensors");
  EXPECT_THAT(test_error([&] { SafetensorsFile f(dir.path / "d.safetensors"); }),
              AllOf(HasSubstr("d.safetensors"), HasSubstr("is a directory")));
}

// nlohmann parses iteratively but dump() (quoted in error messages) and copies recurse: a header
// of 100000 nested arrays overflowed the stack (seen with fuzz/safetensors_fuzz). Deeper than 128
// levels (serde_json's limit, which the safetensors library parses with) is refused.
TEST(Safetensors, DeeplyNestedHeadersAreRefused) {
  auto nested = [](size_t depth) { return std::string(depth, '[') + std::string(depth, ']'); };
  EXPECT_THAT(header_error(R"({"t":)" + nested(100000) + "}"),
              AllOf(HasSubstr("bad.safetensors"), HasSubstr("corrupt safetensors header"),
                    HasSubstr("nested deeper than 128 levels")));
  // 128 levels in all: accepted ("__metadata__" keeps only its string values).
  EXPECT_EQ(header_error(R"({"__metadata__":{"x":)" + nested(126) + R"(,"s":"[[[["}})"),
            "<no exception>");
  EXPECT_THAT(header_error(R"({"__metadata__":{"x":)" + nested(127) + "}}"),
              HasSubstr("nested deeper than 128 levels"));
}

// Writes a safetensors file byte for byte: the header as given (no padding), then `data`.
void write_raw_safetensors(const fs::path& path, const std::string& header,
                           const std::vector<uint8_t>& data) {
  const uint64_t n = header.size();
  std::string bytes(reinterpret_cast<const char*>(&n), 8);
  bytes += header;
  bytes.append(reinterpret_cast<const char*>(data.data()), data.size());
  write_text(path, bytes);
}

// An empty tensor may have huge other dimensions (the safetensors library accepts them too);
// numel() multiplied them first and overflowed int64 (undefined behaviour).
TEST(Safetensors, EmptyTensorsWithHugeDimensionsHaveNoElements) {
  TempDir dir;
  write_raw_safetensors(
      dir.path / "e.safetensors",
      R"({"t":{"dtype":"U8","shape":[4611686018427387904,2,0],"data_offsets":[0,0]}})", {});
  SafetensorsFile f(dir.path / "e.safetensors");
  EXPECT_EQ(f.tensors().at("t").numel(), 0);
  EXPECT_EQ(f.tensors().at("t").bytes, 0u);
}

// The format does not require alignment (files with odd header lengths exist); such tensors are
// copied so that typed reads of them are aligned, and keep their values.
TEST(Safetensors, UnalignedTensorsAreCopiedAligned) {
  TempDir dir;
  const RawTensor bf = float_tensor({1.5f, -3.f}, {2}, "BF16");
  const RawTensor f = float_tensor({0.25f, 7.f}, {2});
  // data_offsets not a multiple of the element size: the BF16 tensor starts at byte 1.
  std::vector<uint8_t> data(1 + bf.bytes.size(), 42);
  std::copy(bf.bytes.begin(), bf.bytes.end(), data.begin() + 1);
  write_raw_safetensors(dir.path / "rel.safetensors",
                        R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},)"
                        R"("b":{"dtype":"BF16","shape":[2],"data_offsets":[1,5]}})" +
                            std::string(7, ' '),  // 8 + header = 88: only the offset is odd
                        data);
  {
    SafetensorsFile file(dir.path / "rel.safetensors");
    const TensorView& b = file.tensors().at("b");
    EXPECT_EQ(reinterpret_cast<uintptr_t>(b.data) % 2, 0u);
    EXPECT_EQ(bf16_to_f32(reinterpret_cast<const uint16_t*>(b.data)[1]), -3.f);
    EXPECT_EQ(file.copied_bytes() > 0, true);
    EXPECT_EQ(static_cast<uint8_t>(file.tensors().at("a").data[0]), 42);
  }
  // An odd header length: every tensor of the file is misaligned.
  std::string header = R"({"f":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  if (header.size() % 2 == 0) header += ' ';
  write_raw_safetensors(dir.path / "odd.safetensors", header, f.bytes);
  SafetensorsFile file(dir.path / "odd.safetensors");
  const TensorView& t = file.tensors().at("f");
  EXPECT_EQ(reinterpret_cast<uintptr_t>(t.data) % 4, 0u);
  EXPECT_EQ(reinterpret_cast<const float*>(t.data)[1], 7.f);
  // Files written aligned (as the safetensors library writes them) are not copied.
  std::map<std::string, RawTensor> ts;
  ts["b"] = bf;
  ts["f"] = f;
  write_safetensors(dir.path / "aligned.safetensors", ts);
  EXPECT_EQ(SafetensorsFile(dir.path / "aligned.safetensors").copied_bytes(), 0u);
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
  // A directory where the shard should be.
  fs::create_directories(dir.path / "model-00002-of-00002.safetensors");
  EXPECT_THAT(test_error([&] { TensorStore s(dir.path); }),
              AllOf(HasSubstr("model-00002-of-00002.safetensors"), HasSubstr("is a directory")));
}

// The index must agree with the shards and name files inside the model directory.
TEST(Weights, ShardIndexMustMatchTheShards) {
  TempDir dir;
  std::map<std::string, RawTensor> a, b;
  a["x"] = float_tensor({1, 2}, {2});
  b["y"] = float_tensor({3, 4}, {2});
  write_safetensors(dir.path / "a.safetensors", a);
  write_safetensors(dir.path / "b.safetensors", b);
  fs::create_directories(dir.path / "sub");
  write_safetensors(dir.path / "sub" / "c.safetensors", {{"z", float_tensor({5}, {1})}});
  auto store_error = [&](const std::string& weight_map) {
    write_text(dir.path / "model.safetensors.index.json",
               R"({"metadata":{},"weight_map":)" + weight_map + "}");
    return test_error([&] { TensorStore s(dir.path); });
  };
  EXPECT_EQ(store_error(R"({"x":"a.safetensors","y":"b.safetensors","z":"sub/c.safetensors"})"),
            "<no exception>");
  EXPECT_EQ(store_error(R"({"x":"./a.safetensors","y":"b.safetensors"})"), "<no exception>");
  EXPECT_THAT(store_error(R"({"x":"b.safetensors","y":"a.safetensors"})"),
              AllOf(HasSubstr("model.safetensors.index.json"), HasSubstr("tensor 'x'"),
                    HasSubstr("mapped to " + (dir.path / "b.safetensors").string()),
                    HasSubstr("found in " + (dir.path / "a.safetensors").string())));
  EXPECT_THAT(
      store_error(R"({"x":"a.safetensors","w":"b.safetensors"})"),
      AllOf(HasSubstr("tensor 'w'"), HasSubstr("b.safetensors, which does not contain it")));
  for (const std::string bad :
       {"../a.safetensors", "/etc/passwd", "sub/../../a.safetensors", "sub/", ""}) {
    EXPECT_THAT(store_error(R"({"x":")" + bad + R"("})"),
                AllOf(HasSubstr("weight_map['x'] names shard \"" + bad + "\""),
                      HasSubstr("outside the model directory")))
        << bad;
  }
  EXPECT_THAT(store_error(R"({"x":"a.safetensors\u0000/../../etc/passwd"})"),
              HasSubstr(R"("a.safetensors\u0000/../../etc/passwd", outside the model directory)"));
  EXPECT_THAT(store_error(R"({"x":"a.safetensors","x":"b.safetensors"})"),
              HasSubstr("duplicate key 'x' in 'weight_map'"));
  EXPECT_THAT(store_error(R"({"x":"sub"})"),
              AllOf(HasSubstr("shard"), HasSubstr("sub listed in the index is a directory")));
  // A name the file system refuses is an adamas::Error naming the index, not a filesystem_error
  // (found by fuzz/safetensors_index_fuzz).
  EXPECT_THAT(store_error(R"({"x":")" + std::string(300, 'a') + R"(.safetensors"})"),
              AllOf(HasSubstr("model.safetensors.index.json: cannot access"),
                    HasSubstr("File name too long")));
  EXPECT_THAT(store_error("[" + std::string(1000, '[') + "]"),
              AllOf(HasSubstr("model.safetensors.index.json"), HasSubstr("nested deeper than")));
  fs::remove(dir.path / "model.safetensors.index.json");
  fs::create_directories(dir.path / "model.safetensors.index.json");
  EXPECT_THAT(test_error([&] { TensorStore s(dir.path); }),
              AllOf(HasSubstr("model.safetensors.index.json"), HasSubstr("is a directory")));
}

// Layers beyond the config's num_hidden_layers would be silently dropped: a config/checkpoint
// mismatch.
TEST(Weights, LayersBeyondTheConfigAreAnError) {
  TinySpec spec;
  spec.layers = 4;
  TempDir dir;
  write_safetensors(dir.path / "model.safetensors", tiny_tensors(spec));
  spec.layers = 3;
  const ModelConfig c = parse_config(tiny_config_json(spec));
  EXPECT_THAT(test_error([&] { load_weights(c, std::make_shared<const TensorStore>(dir.path)); }),
              AllOf(HasSubstr("layer 3 ('model.layers.3."), HasSubstr("num_hidden_layers = 3")));
  auto ts = tiny_tensors(spec);
  ts["model.layers.12.mlp.up_proj.weight"] = float_tensor({1}, {1});
  ts["model.layers.7.self_attn.q_proj.weight"] = float_tensor({1}, {1});
  ts["model.layers.extra.weight"] = float_tensor({1}, {1});  // not a layer index: ignored
  write_safetensors(dir.path / "model.safetensors", ts);
  EXPECT_THAT(test_error([&] { load_weights(c, std::make_shared<const TensorStore>(dir.path)); }),
              AllOf(HasSubstr("layer 7 ('model.layers.7.self_attn.q_proj.weight')"),
                    HasSubstr("(layers 0..2)")));
}

}  // namespace
}  // namespace adamas::model::test
