#include "adamas/model/safetensors.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "common/check.h"

namespace adamas::model {
namespace {

using nlohmann::json;

TensorType parse_type(const std::string& s) {
  if (s == "F32") return TensorType::kF32;
  if (s == "F16") return TensorType::kF16;
  if (s == "BF16") return TensorType::kBF16;
  if (s == "I32") return TensorType::kI32;
  if (s == "I64") return TensorType::kI64;
  return TensorType::kOther;
}

// Byte size of the other safetensors types, so that their ranges can be checked too.
size_t other_type_size(const std::string& s) {
  if (s == "F64" || s == "U64") return 8;
  if (s == "U32") return 4;
  if (s == "I16" || s == "U16") return 2;
  if (s == "I8" || s == "U8" || s == "BOOL" || s == "F8_E4M3" || s == "F8_E5M2") return 1;
  return 0;
}

}  // namespace

std::string_view tensor_type_name(TensorType t) {
  switch (t) {
    case TensorType::kF32:
      return "F32";
    case TensorType::kF16:
      return "F16";
    case TensorType::kBF16:
      return "BF16";
    case TensorType::kI32:
      return "I32";
    case TensorType::kI64:
      return "I64";
    case TensorType::kOther:
      return "other";
  }
  return "?";
}

size_t tensor_type_size(TensorType t) {
  switch (t) {
    case TensorType::kF32:
    case TensorType::kI32:
      return 4;
    case TensorType::kF16:
    case TensorType::kBF16:
      return 2;
    case TensorType::kI64:
      return 8;
    case TensorType::kOther:
      return 0;
  }
  return 0;
}

int64_t TensorView::numel() const {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  return n;
}

std::string TensorView::shape_str() const { return fmt::format("[{}]", fmt::join(shape, ", ")); }

SafetensorsFile::SafetensorsFile(const std::filesystem::path& path) : path_(path.string()) {
  const int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
  ADAMAS_CHECK(fd >= 0, "cannot open safetensors file {}: {}", path_, std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    throw Error(fmt::format("cannot stat {}", path_));
  }
  size_ = static_cast<size_t>(st.st_size);
  if (size_ < 8) {
    ::close(fd);
    throw Error(
        fmt::format("{}: corrupt safetensors file: {} bytes, shorter than the 8-byte "
                    "header length",
                    path_, size_));
  }
  map_ = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  ADAMAS_CHECK(map_ != MAP_FAILED, "cannot mmap {}: {}", path_, std::strerror(errno));
  // From here on the destructor does not run if we throw: unmap by hand.
  try {
    const auto* base = static_cast<const std::byte*>(map_);
    uint64_t header_len = 0;
    std::memcpy(&header_len, base, 8);  // little-endian, as the format specifies
    ADAMAS_CHECK(header_len <= size_ - 8,
                 "{}: corrupt safetensors header: header length {} exceeds the file ({} bytes)",
                 path_, header_len, size_);
    json h;
    try {
      h = json::parse(reinterpret_cast<const char*>(base + 8),
                      reinterpret_cast<const char*>(base + 8 + header_len));
    } catch (const json::exception& e) {
      throw Error(
          fmt::format("{}: corrupt safetensors header (not valid JSON): {}", path_, e.what()));
    }
    ADAMAS_CHECK(h.is_object(), "{}: corrupt safetensors header: not a JSON object", path_);
    const std::byte* data = base + 8 + header_len;
    const size_t data_bytes = size_ - 8 - header_len;
    for (const auto& [name, t] : h.items()) {
      if (name == "__metadata__") {
        if (t.is_object())
          for (const auto& [k, v] : t.items())
            if (v.is_string()) metadata_[k] = v.get<std::string>();
        continue;
      }
      ADAMAS_CHECK(t.is_object() && t.contains("dtype") && t.contains("shape") &&
                       t.contains("data_offsets") && t["dtype"].is_string() &&
                       t["shape"].is_array() && t["data_offsets"].is_array() &&
                       t["data_offsets"].size() == 2,
                   "{}: corrupt safetensors header: tensor '{}' needs dtype, shape and "
                   "data_offsets [begin, end], got {}",
                   path_, name, t.dump());
      TensorView v;
      v.name = name;
      v.type_name = t["dtype"].get<std::string>();
      v.type = parse_type(v.type_name);
      for (const auto& s : t["shape"]) {
        ADAMAS_CHECK(s.is_number_unsigned(), "{}: tensor '{}' has a bad shape {}", path_, name,
                     t["shape"].dump());
        v.shape.push_back(s.get<int64_t>());
      }
      const auto& off = t["data_offsets"];
      ADAMAS_CHECK(off[0].is_number_unsigned() && off[1].is_number_unsigned(),
                   "{}: tensor '{}' has bad data_offsets {}", path_, name, off.dump());
      const uint64_t begin = off[0].get<uint64_t>(), end = off[1].get<uint64_t>();
      ADAMAS_CHECK(begin <= end && end <= data_bytes,
                   "{}: tensor '{}': data_offsets [{}, {}] outside the data section ({} bytes)",
                   path_, name, begin, end, data_bytes);
      const size_t esize =
          v.type != TensorType::kOther ? tensor_type_size(v.type) : other_type_size(v.type_name);
      ADAMAS_CHECK(esize > 0, "{}: tensor '{}' has unknown dtype '{}'", path_, name, v.type_name);
      ADAMAS_CHECK(static_cast<uint64_t>(v.numel()) * esize == end - begin,
                   "{}: tensor '{}': {} {} needs {} bytes but data_offsets span {}", path_, name,
                   v.type_name, v.shape_str(), v.numel() * esize, end - begin);
      v.data = data + begin;
      v.bytes = end - begin;
      v.file = &path_;
      tensors_.emplace(name, std::move(v));
    }
  } catch (...) {
    ::munmap(map_, size_);
    throw;
  }
}

SafetensorsFile::~SafetensorsFile() {
  if (map_ && map_ != MAP_FAILED) ::munmap(map_, size_);
}

TensorStore::TensorStore(const std::filesystem::path& path) {
  namespace fs = std::filesystem;
  std::vector<fs::path> paths;
  source_ = path.string();
  if (fs::is_regular_file(path)) {
    paths.push_back(path);
  } else {
    ADAMAS_CHECK(fs::is_directory(path), "model path {} does not exist", path.string());
    const fs::path index = path / "model.safetensors.index.json";
    if (fs::exists(index)) {
      std::ifstream in(index);
      std::stringstream ss;
      ss << in.rdbuf();
      json j;
      try {
        j = json::parse(ss.str());
      } catch (const json::exception& e) {
        throw Error(fmt::format("{}: not valid JSON: {}", index.string(), e.what()));
      }
      ADAMAS_CHECK(j.contains("weight_map") && j["weight_map"].is_object(),
                   "{}: missing object 'weight_map'", index.string());
      std::set<std::string> shards;
      for (const auto& [name, file] : j["weight_map"].items()) {
        ADAMAS_CHECK(file.is_string(), "{}: weight_map['{}'] must be a file name", index.string(),
                     name);
        shards.insert(file.get<std::string>());
      }
      for (const auto& s : shards) {
        ADAMAS_CHECK(fs::exists(path / s), "{}: shard {} listed in the index is missing",
                     index.string(), (path / s).string());
        paths.push_back(path / s);
      }
    } else if (fs::exists(path / "model.safetensors")) {
      paths.push_back(path / "model.safetensors");
    } else {
      for (const auto& e : fs::directory_iterator(path))
        if (e.path().extension() == ".safetensors") paths.push_back(e.path());
      ADAMAS_CHECK(paths.size() == 1,
                   "{}: expected model.safetensors, model.safetensors.index.json or a single "
                   "*.safetensors file, found {} .safetensors files",
                   path.string(), paths.size());
    }
  }
  for (const auto& p : paths) {
    files_.push_back(std::make_unique<SafetensorsFile>(p));
    for (const auto& [name, view] : files_.back()->tensors()) {
      const auto [it, inserted] = index_.emplace(name, &view);
      ADAMAS_CHECK(inserted, "tensor '{}' appears in both {} and {}", name, *it->second->file,
                   p.string());
    }
  }
}

const TensorView* TensorStore::find(std::string_view name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : it->second;
}

const TensorView& TensorStore::require(std::string_view name, std::vector<int64_t> shape) const {
  const TensorView* t = find(name);
  ADAMAS_CHECK(t != nullptr, "{}: missing tensor '{}'", source_, name);
  ADAMAS_CHECK(
      t->type == TensorType::kF32 || t->type == TensorType::kF16 || t->type == TensorType::kBF16,
      "{}: tensor '{}' has dtype {}, expected F32, F16 or BF16", *t->file, name, t->type_name);
  ADAMAS_CHECK(t->shape == shape, "{}: tensor '{}' has shape {}, expected [{}]", *t->file, name,
               t->shape_str(), fmt::join(shape, ", "));
  return *t;
}

std::vector<std::string> TensorStore::names() const {
  std::vector<std::string> out;
  for (const auto& [name, v] : index_) out.push_back(name);
  return out;
}

}  // namespace adamas::model
