// The input as a whole .safetensors file (8-byte header length, JSON header, data), opened through
// TensorStore (a file path) and SafetensorsFile. Every accepted tensor's bytes are read (ASan sees
// a view past the mapping) and its description checked against the header's rules.
#include <algorithm>
#include <cstring>
#include <set>

#include "adamas/model/safetensors.h"
#include "fuzz_util.h"

namespace {

using namespace adamas::model;
using adamas::fuzz::accepts;

size_t element_size(const TensorView& v) {
  if (v.type != TensorType::kOther) return tensor_type_size(v.type);
  const std::string& s = v.type_name;
  if (s == "F64" || s == "U64") return 8;
  if (s == "U32") return 4;
  if (s == "I16" || s == "U16") return 2;
  return 1;
}

// Reads every byte of every tensor and checks what the loader promises about each view.
void touch(const std::map<std::string, TensorView>& tensors, size_t file_bytes) {
  std::vector<std::pair<const std::byte*, size_t>> ranges;
  for (const auto& [name, v] : tensors) {
    FUZZ_CHECK(!name.empty() && name == v.name, "tensor name");
    FUZZ_CHECK(v.type_name != "", "dtype");
    (void)tensor_type_name(v.type);
    (void)v.shape_str();
    const size_t esize = element_size(v);
    uint64_t numel = 1;
    bool zero = false;
    for (int64_t d : v.shape) {
      FUZZ_CHECK(d >= 0, "negative dimension in " + name);
      zero = zero || d == 0;
    }
    if (!zero) {
      for (int64_t d : v.shape) numel *= static_cast<uint64_t>(d);  // no overflow: bytes ≤ file
      FUZZ_CHECK(numel * esize == v.bytes, "byte count of " + name);
      FUZZ_CHECK(v.numel() == static_cast<int64_t>(numel), "numel of " + name);
    } else {
      FUZZ_CHECK(v.bytes == 0, "empty tensor with bytes: " + name);
      FUZZ_CHECK(v.numel() == 0, "numel of empty " + name);
    }
    FUZZ_CHECK(v.bytes <= file_bytes, "tensor larger than the file: " + name);
    if (v.bytes == 0) continue;
    FUZZ_CHECK(v.data != nullptr, "null data: " + name);
    FUZZ_CHECK(reinterpret_cast<uintptr_t>(v.data) % esize == 0, "misaligned tensor " + name);
    unsigned sum = 0;
    for (size_t i = 0; i < v.bytes; ++i) sum += static_cast<unsigned>(v.data[i]);
    volatile unsigned sink = sum;
    (void)sink;
    ranges.emplace_back(v.data, v.bytes);
  }
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 1; i < ranges.size(); ++i)
    FUZZ_CHECK(ranges[i - 1].first + ranges[i - 1].second <= ranges[i].first,
               "overlapping tensors accepted");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto path = adamas::fuzz::scratch_dir() / "model.safetensors";
  adamas::fuzz::write_file(path, adamas::fuzz::as_text(data, size));

  bool file_ok = false;
  std::set<std::string> file_names;
  accepts([&] {
    SafetensorsFile f(path);
    FUZZ_CHECK(f.file_bytes() == size, "file_bytes");
    touch(f.tensors(), size);
    for (const auto& [k, v] : f.metadata()) (void)(k.size() + v.size());
    for (const auto& [name, v] : f.tensors()) file_names.insert(name);
    file_ok = true;
  });

  bool store_ok = false;
  accepts([&] {
    TensorStore store(path);
    FUZZ_CHECK(store.files().size() == 1, "one file");
    touch(store.files()[0]->tensors(), size);
    const auto names = store.names();
    FUZZ_CHECK(std::set<std::string>(names.begin(), names.end()) == file_names,
               "TensorStore and SafetensorsFile disagree on the tensors");
    for (const auto& n : names) {
      const TensorView* v = store.find(n);
      FUZZ_CHECK(v != nullptr && v->name == n, "find");
      // require() with the tensor's own shape succeeds exactly for float tensors.
      const bool is_float = v->type == TensorType::kF32 || v->type == TensorType::kF16 ||
                            v->type == TensorType::kBF16;
      const bool ok = accepts([&] { (void)store.require(n, v->shape); });
      FUZZ_CHECK(ok == is_float, "require() on a tensor's own shape");
    }
    FUZZ_CHECK(store.find("\x01no such tensor") == nullptr, "find of a missing tensor");
    store_ok = true;
  });
  FUZZ_CHECK(file_ok == store_ok, "SafetensorsFile and TensorStore disagree on the file");
  return 0;
}
