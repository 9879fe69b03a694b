// The input as model.safetensors.index.json in a model directory that holds, written once at
// startup: two small valid shards (model-00001-of-00002.safetensors: embed, norm;
// model-00002-of-00002.safetensors: lm_head, a bf16 tensor), a third one in a subdirectory
// (sub/extra.safetensors: extra), a file that is not a safetensors file (notes.txt) and a directory
// named like a shard (dir.safetensors). The directory is opened with TensorStore.
#include <set>

#include "adamas/model/safetensors.h"
#include "fuzz_util.h"

namespace {

namespace fs = std::filesystem;
using namespace adamas::model;

// A safetensors file: tensors of F32 [n] with values 0..n-1 (name, n), laid out in order.
std::string safetensors_bytes(const std::vector<std::pair<std::string, int>>& tensors) {
  std::string header = "{\"__metadata__\":{\"format\":\"pt\"}";
  std::string data;
  for (const auto& [name, n] : tensors) {
    const size_t begin = data.size();
    for (int i = 0; i < n; ++i) {
      const float f = static_cast<float>(i);
      data.append(reinterpret_cast<const char*>(&f), sizeof f);
    }
    header += ",\"" + name + "\":{\"dtype\":\"F32\",\"shape\":[" + std::to_string(n) +
              "],\"data_offsets\":[" + std::to_string(begin) + "," + std::to_string(data.size()) +
              "]}";
  }
  header += "}";
  while ((8 + header.size()) % 8 != 0) header += ' ';  // keeps the data 8-byte aligned
  std::string out(8, '\0');
  uint64_t len = header.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((len >> (8 * i)) & 0xff);
  return out + header + data;
}

const fs::path& model_dir() {
  static const fs::path dir = [] {
    const fs::path d = adamas::fuzz::scratch_dir() / "model";
    fs::create_directories(d / "sub");
    fs::create_directories(d / "dir.safetensors");
    adamas::fuzz::write_file(
        d / "model-00001-of-00002.safetensors",
        safetensors_bytes({{"model.embed_tokens.weight", 8}, {"model.norm.weight", 4}}));
    adamas::fuzz::write_file(d / "model-00002-of-00002.safetensors",
                             safetensors_bytes({{"lm_head.weight", 8}, {"x", 1}}));
    adamas::fuzz::write_file(d / "sub" / "extra.safetensors", safetensors_bytes({{"extra", 2}}));
    adamas::fuzz::write_file(d / "notes.txt", "not a safetensors file\n");
    return d;
  }();
  return dir;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const fs::path& dir = model_dir();
  adamas::fuzz::write_file(dir / "model.safetensors.index.json", adamas::fuzz::as_text(data, size));
  adamas::fuzz::accepts([&] {
    TensorStore store(dir);
    std::set<std::string> files;
    for (const auto& f : store.files()) {
      // Only files inside the model directory may be opened.
      const fs::path rel = fs::path(f->path()).lexically_relative(dir);
      FUZZ_CHECK(!rel.empty() && *rel.begin() != "..", "shard outside the model dir: " + f->path());
      FUZZ_CHECK(files.insert(fs::weakly_canonical(f->path()).string()).second,
                 "a shard opened twice: " + f->path());
    }
    for (const auto& name : store.names()) {
      const TensorView* v = store.find(name);
      FUZZ_CHECK(v != nullptr && v->name == name && v->file != nullptr, "find " + name);
      float sum = 0;
      for (size_t i = 0; i < v->bytes / sizeof(float); ++i)
        sum += reinterpret_cast<const float*>(v->data)[i];
      volatile float sink = sum;
      (void)sink;
    }
  });
  return 0;
}
