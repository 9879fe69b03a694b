// Helpers of the model runtime tests: a safetensors writer (independent of the reader under test),
// tiny random Llama/Qwen2 checkpoints written from C++, temporary directories, FNV-1a hashing and
// the locations of the Python-generated peer-check checkpoints and references.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "adamas/common/dtype.h"
#include "adamas/common/error.h"

namespace adamas::model::test {

namespace fs = std::filesystem;

// A fresh directory under the system temp dir, removed at scope exit.
struct TempDir {
  fs::path path;
  TempDir() {
    static int counter = 0;
    path = fs::temp_directory_path() /
           ("adamas_model_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
};

inline void write_text(const fs::path& p, const std::string& s) {
  std::ofstream out(p, std::ios::binary);
  out << s;
}

struct RawTensor {
  std::string dtype;  // "F32", "F16", "BF16", "I64", ...
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;
};

// fp32 values stored as F32 / F16 / BF16 (the rounding is the library's, tested on its own).
inline RawTensor float_tensor(const std::vector<float>& v, std::vector<int64_t> shape,
                              const std::string& dtype = "F32") {
  RawTensor t{dtype, std::move(shape), {}};
  const DType dt = dtype == "F16" ? DType::kF16 : dtype == "BF16" ? DType::kBF16 : DType::kF32;
  t.bytes.resize(v.size() * dtype_size(dt));
  convert_from_f32(v.data(), t.bytes.data(), dt, v.size());
  return t;
}

inline std::string shape_json(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) {
    if (i) out += ',';
    out += std::to_string(s[i]);
  }
  return out + "]";
}

// Writes a safetensors file; `header_override` (when not empty) replaces the JSON header.
inline void write_safetensors(const fs::path& path, const std::map<std::string, RawTensor>& ts,
                              const std::string& header_override = "") {
  std::string header = "{";
  std::vector<uint8_t> data;
  for (const auto& [name, t] : ts) {
    if (header.size() > 1) header += ",";
    header += "\"" + name + "\":{\"dtype\":\"" + t.dtype + "\",\"shape\":" + shape_json(t.shape) +
              ",\"data_offsets\":[" + std::to_string(data.size()) + "," +
              std::to_string(data.size() + t.bytes.size()) + "]}";
    data.insert(data.end(), t.bytes.begin(), t.bytes.end());
  }
  header += "}";
  if (!header_override.empty()) header = header_override;
  while (header.size() % 8) header += ' ';
  std::ofstream out(path, std::ios::binary);
  const uint64_t n = header.size();
  out.write(reinterpret_cast<const char*>(&n), 8);
  out << header;
  out.write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size()));
}

struct TinySpec {
  std::string model_type = "llama";
  std::string arch = "LlamaForCausalLM";
  int vocab = 96, hidden = 64, inter = 96, layers = 3, heads = 4, kv_heads = 2, head_dim = 16;
  bool tie = false, qkv_bias = false;
  std::string dtype = "F32";
  std::string rope_scaling = "null";  // JSON
  uint32_t seed = 7;
};

inline std::string tiny_config_json(const TinySpec& s) {
  return "{\"architectures\":[\"" + s.arch + "\"],\"model_type\":\"" + s.model_type +
         "\",\"vocab_size\":" + std::to_string(s.vocab) +
         ",\"hidden_size\":" + std::to_string(s.hidden) +
         ",\"intermediate_size\":" + std::to_string(s.inter) +
         ",\"num_hidden_layers\":" + std::to_string(s.layers) +
         ",\"num_attention_heads\":" + std::to_string(s.heads) +
         ",\"num_key_value_heads\":" + std::to_string(s.kv_heads) +
         ",\"head_dim\":" + std::to_string(s.head_dim) +
         ",\"rms_norm_eps\":1e-5,\"rope_theta\":10000.0,\"rope_scaling\":" + s.rope_scaling +
         ",\"tie_word_embeddings\":" + (s.tie ? "true" : "false") +
         ",\"hidden_act\":\"silu\",\"bos_token_id\":1,\"eos_token_id\":2}";
}

// The tensors of a random model of spec s: activations O(1), attention far from uniform.
inline std::map<std::string, RawTensor> tiny_tensors(const TinySpec& s) {
  std::mt19937 g(s.seed);
  std::normal_distribution<float> nd;
  auto mat = [&](int r, int c, float gain) {
    std::vector<float> v(size_t(r) * c);
    for (auto& x : v) x = nd(g) * gain / std::sqrt(float(c));
    return float_tensor(v, {r, c}, s.dtype);
  };
  auto vec = [&](int n, float mean, float sd) {
    std::vector<float> v(n);
    for (auto& x : v) x = mean + sd * nd(g);
    return float_tensor(v, {n}, s.dtype);
  };
  std::map<std::string, RawTensor> t;
  const int qd = s.heads * s.head_dim, kvd = s.kv_heads * s.head_dim;
  t["model.embed_tokens.weight"] = mat(s.vocab, s.hidden, std::sqrt(float(s.hidden)));
  for (int i = 0; i < s.layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    t[p + "input_layernorm.weight"] = vec(s.hidden, 1, 0.2f);
    t[p + "post_attention_layernorm.weight"] = vec(s.hidden, 1, 0.2f);
    t[p + "self_attn.q_proj.weight"] = mat(qd, s.hidden, 2);
    t[p + "self_attn.k_proj.weight"] = mat(kvd, s.hidden, 2);
    t[p + "self_attn.v_proj.weight"] = mat(kvd, s.hidden, 1);
    t[p + "self_attn.o_proj.weight"] = mat(s.hidden, qd, 1);
    if (s.qkv_bias) {
      t[p + "self_attn.q_proj.bias"] = vec(qd, 0, 0.5f);
      t[p + "self_attn.k_proj.bias"] = vec(kvd, 0, 0.5f);
      t[p + "self_attn.v_proj.bias"] = vec(kvd, 0, 0.5f);
    }
    t[p + "mlp.gate_proj.weight"] = mat(s.inter, s.hidden, 1);
    t[p + "mlp.up_proj.weight"] = mat(s.inter, s.hidden, 1);
    t[p + "mlp.down_proj.weight"] = mat(s.hidden, s.inter, 1);
  }
  t["model.norm.weight"] = vec(s.hidden, 1, 0.2f);
  if (!s.tie) t["lm_head.weight"] = mat(s.vocab, s.hidden, 4);
  return t;
}

inline void write_tiny_model(const fs::path& dir, const TinySpec& s) {
  fs::create_directories(dir);
  write_text(dir / "config.json", tiny_config_json(s));
  write_safetensors(dir / "model.safetensors", tiny_tensors(s));
}

// CRC-32 (IEEE 802.3, zlib's) of a file as 8 hex digits, as tools/model_check/st_io.py writes.
inline std::string crc32_file(const fs::path& p) {
  uint32_t table[256];
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    table[i] = c;
  }
  std::ifstream in(p, std::ios::binary);
  uint32_t crc = 0xFFFFFFFFu;
  char buf[1 << 16];
  while (in) {
    in.read(buf, sizeof buf);
    for (std::streamsize i = 0; i < in.gcount(); ++i)
      crc = table[(crc ^ static_cast<unsigned char>(buf[i])) & 0xff] ^ (crc >> 8);
  }
  char out[9];
  std::snprintf(out, sizeof out, "%08x", crc ^ 0xFFFFFFFFu);
  return out;
}

// Written by make_checkpoints.py at test time (the ctest fixture), if Python 3 + numpy exist.
inline fs::path model_check_dir() { return ADAMAS_MODEL_CHECK_DIR; }
// Committed test data: reference logits from Hugging Face transformers.
inline fs::path model_test_data() { return ADAMAS_MODEL_TEST_DATA; }

}  // namespace adamas::model::test

namespace adamas::model::test {
// The message of the adamas::Error f throws, or a marker saying what happened instead.
template <class F>
std::string test_error(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  } catch (const std::exception& e) {
    return std::string("<not an adamas::Error: ") + e.what() + ">";
  }
  return "<no exception>";
}
}  // namespace adamas::model::test
