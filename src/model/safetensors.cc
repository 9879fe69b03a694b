#include "adamas/model/safetensors.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "common/check.h"
#include "model/json_depth.h"

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

// Parses JSON, rejecting duplicate keys at any depth: the format disallows them and nlohmann (like
// most parsers) would silently keep the last one. Returns "" or the duplicate, described.
std::string parse_unique_keys(const char* begin, const char* end, json& out) {
  struct Object {
    std::string name;  // the key it is the value of ("" at top level)
    std::set<std::string> keys;
  };
  std::vector<Object> open;
  std::string last_key, duplicate;
  out = json::parse(begin, end, [&](int, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::object_start) {
      open.push_back({open.empty() ? "" : last_key, {}});
    } else if (event == json::parse_event_t::object_end) {
      if (!open.empty()) open.pop_back();
    } else if (event == json::parse_event_t::key) {
      last_key = parsed.get<std::string>();
      if (!open.empty() && !open.back().keys.insert(last_key).second && duplicate.empty())
        duplicate = open.back().name.empty()
                        ? fmt::format("'{}'", last_key)
                        : fmt::format("'{}' in '{}'", last_key, open.back().name);
    }
    return true;
  });
  return duplicate;
}

// a * b, or false when it overflows 64 bits.
bool mul_u64(uint64_t a, uint64_t b, uint64_t* out) { return !__builtin_mul_overflow(a, b, out); }

// A shard name from the index must name a file inside the model directory: a relative path with no
// '..' component (symlinks are not resolved: HF's cache links snapshot files to blobs elsewhere).
bool shard_name_ok(const std::string& s) {
  if (s.empty() || s.find('\0') != std::string::npos) return false;
  const std::filesystem::path p(s);
  if (p.is_absolute() || p.has_root_name() || p.has_root_directory()) return false;
  for (const auto& part : p)
    if (part == "..") return false;
  return p.has_filename();
}

// The type of the file at `p` (not_found when there is none). Other failures (a name longer than
// the file system allows, a permission denied) are adamas::Error naming `what` and the path, where
// std::filesystem's throwing queries would throw filesystem_error.
std::filesystem::file_type file_type_of(const std::filesystem::path& p, std::string_view what) {
  std::error_code ec;
  const std::filesystem::file_status st = std::filesystem::status(p, ec);
  if (st.type() == std::filesystem::file_type::not_found) return st.type();
  ADAMAS_CHECK(!ec, "{}: cannot access {}: {}", what, p.string(), ec.message());
  return st.type();
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
  // A zero dimension makes the count 0 whatever the others are: the loader accepts an empty
  // [2^62, 2, 0] (as the safetensors library does), whose running product would overflow.
  if (std::find(shape.begin(), shape.end(), 0) != shape.end()) return 0;
  int64_t n = 1;  // the other products fit: numel * element size is the tensor's byte count
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
  if (!S_ISREG(st.st_mode)) {  // mmap of a directory would fail with a puzzling ENODEV
    ::close(fd);
    throw Error(fmt::format("{}: is {}, expected a safetensors file", path_,
                            S_ISDIR(st.st_mode) ? "a directory" : "not a regular file"));
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
    const std::string_view header(reinterpret_cast<const char*>(base + 8), header_len);
    ADAMAS_CHECK(json_depth(header) <= kMaxJsonDepth,
                 "{}: corrupt safetensors header: JSON nested deeper than {} levels", path_,
                 kMaxJsonDepth);
    json h;
    std::string duplicate;
    try {
      duplicate = parse_unique_keys(reinterpret_cast<const char*>(base + 8),
                                    reinterpret_cast<const char*>(base + 8 + header_len), h);
    } catch (const json::exception& e) {
      throw Error(
          fmt::format("{}: corrupt safetensors header (not valid JSON): {}", path_, e.what()));
    }
    ADAMAS_CHECK(duplicate.empty(),
                 "{}: corrupt safetensors header: duplicate key {} (keys must be unique)", path_,
                 duplicate);
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
      ADAMAS_CHECK(!name.empty(), "{}: corrupt safetensors header: a tensor has an empty name",
                   path_);
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
      uint64_t numel = 1;
      for (const auto& s : t["shape"]) {
        ADAMAS_CHECK(s.is_number_unsigned(), "{}: tensor '{}' has a bad shape {}", path_, name,
                     t["shape"].dump());
        const uint64_t dim = s.get<uint64_t>();
        ADAMAS_CHECK(
            dim <= uint64_t(INT64_MAX) && mul_u64(numel, dim, &numel),
            "{}: tensor '{}': shape {} has too many elements (the count overflows 64 bits)", path_,
            name, t["shape"].dump());
        v.shape.push_back(static_cast<int64_t>(dim));
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
      uint64_t need = 0;
      ADAMAS_CHECK(mul_u64(numel, esize, &need),
                   "{}: tensor '{}': {} {} has too many bytes (the size overflows 64 bits)", path_,
                   name, v.type_name, v.shape_str());
      ADAMAS_CHECK(need == end - begin,
                   "{}: tensor '{}': {} {} needs {} bytes but data_offsets span {}", path_, name,
                   v.type_name, v.shape_str(), need, end - begin);
      v.data = data + begin;
      v.bytes = end - begin;
      v.file = &path_;
      tensors_.emplace(name, std::move(v));
    }
    check_no_overlap(data);
    align_tensors();
  } catch (...) {
    ::munmap(map_, size_);
    throw;
  }
}

SafetensorsFile::~SafetensorsFile() {
  if (map_ && map_ != MAP_FAILED) ::munmap(map_, size_);
}

// Two tensors sharing bytes would alias each other (a polyglot or corrupt file); the format
// forbids it. Empty tensors own no bytes and may sit anywhere.
void SafetensorsFile::check_no_overlap(const std::byte* data) const {
  std::vector<const TensorView*> by_start;
  for (const auto& [name, v] : tensors_)
    if (v.bytes > 0) by_start.push_back(&v);
  std::sort(by_start.begin(), by_start.end(),
            [](const TensorView* a, const TensorView* b) { return a->data < b->data; });
  for (size_t i = 1; i < by_start.size(); ++i) {
    const TensorView& a = *by_start[i - 1];
    const TensorView& b = *by_start[i];
    ADAMAS_CHECK(a.data + a.bytes <= b.data,
                 "{}: corrupt safetensors header: tensors '{}' (data_offsets [{}, {}]) and '{}' "
                 "([{}, {}]) overlap; each byte must belong to one tensor",
                 path_, a.name, a.data - data, a.data - data + a.bytes, b.name, b.data - data,
                 b.data - data + b.bytes);
  }
}

// The format does not align tensors: the safetensors library accepts any data_offsets, and files in
// the wild have odd header lengths (so every 2-byte tensor sits at an odd address). Typed reads of
// such bytes are undefined behaviour (and vector loads may fault), so those tensors are copied
// into aligned memory instead of rejected.
void SafetensorsFile::align_tensors() {
  constexpr size_t kAlign = 64;
  auto misaligned = [](const TensorView& v) {
    const size_t esize =
        v.type != TensorType::kOther ? tensor_type_size(v.type) : other_type_size(v.type_name);
    return v.bytes > 0 && reinterpret_cast<uintptr_t>(v.data) % esize != 0;
  };
  size_t total = 0;
  for (const auto& [name, v] : tensors_)
    if (misaligned(v)) total += (v.bytes + kAlign - 1) / kAlign * kAlign;
  if (total == 0) return;
  aligned_ = std::make_unique<std::byte[]>(total + kAlign);
  auto* out = reinterpret_cast<std::byte*>(
      (reinterpret_cast<uintptr_t>(aligned_.get()) + kAlign - 1) / kAlign * kAlign);
  for (auto& [name, v] : tensors_) {
    if (!misaligned(v)) continue;
    std::memcpy(out, v.data, v.bytes);
    v.data = out;
    out += (v.bytes + kAlign - 1) / kAlign * kAlign;
  }
  copied_bytes_ = total;
}

TensorStore::TensorStore(const std::filesystem::path& path) {
  namespace fs = std::filesystem;
  std::vector<fs::path> paths;
  std::vector<std::pair<std::string, std::string>> weight_map;  // from the index: tensor, shard
  source_ = path.string();
  const fs::file_type path_type = file_type_of(path, "model path");
  if (path_type == fs::file_type::regular) {
    paths.push_back(path);
  } else {
    ADAMAS_CHECK(path_type == fs::file_type::directory, "model path {} does not exist",
                 path.string());
    const fs::path index = path / "model.safetensors.index.json";
    const fs::file_type index_type = file_type_of(index, "model directory");
    if (index_type != fs::file_type::not_found) {
      const std::string ix = index.string();
      ADAMAS_CHECK(index_type != fs::file_type::directory,
                   "{}: is a directory, expected a JSON file", ix);
      std::ifstream in(index);
      std::stringstream ss;
      ss << in.rdbuf();
      const std::string text = ss.str();
      ADAMAS_CHECK(json_depth(text) <= kMaxJsonDepth,
                   "{}: not valid JSON: nested deeper than {} levels", ix, kMaxJsonDepth);
      json j;
      std::string duplicate;
      try {
        duplicate = parse_unique_keys(text.data(), text.data() + text.size(), j);
      } catch (const json::exception& e) {
        throw Error(fmt::format("{}: not valid JSON: {}", ix, e.what()));
      }
      ADAMAS_CHECK(duplicate.empty(), "{}: duplicate key {} (keys must be unique)", ix, duplicate);
      ADAMAS_CHECK(j.is_object() && j.contains("weight_map") && j["weight_map"].is_object(),
                   "{}: missing object 'weight_map'", ix);
      std::set<std::string> shards;
      for (const auto& [name, file] : j["weight_map"].items()) {
        ADAMAS_CHECK(file.is_string(), "{}: weight_map['{}'] must be a file name", ix, name);
        std::string shard = file.get<std::string>();
        ADAMAS_CHECK(shard_name_ok(shard),
                     "{}: weight_map['{}'] names shard {}, outside the model directory: "
                     "expected a file name relative to it (no absolute path, no '..')",
                     ix, name, file.dump());  // dump() escapes a NUL, which would cut the message
        shard = fs::path(shard).lexically_normal().string();  // "./a" and "a" are one shard
        shards.insert(shard);
        weight_map.emplace_back(name, shard);
      }
      for (const auto& s : shards) {
        const fs::path p = path / s;
        const fs::file_type type = file_type_of(p, ix);  // e.g. a name too long: an Error
        ADAMAS_CHECK(type != fs::file_type::not_found,
                     "{}: shard {} listed in the index is missing", ix, p.string());
        ADAMAS_CHECK(type != fs::file_type::directory,
                     "{}: shard {} listed in the index is a directory, expected a file", ix,
                     p.string());
        paths.push_back(p);
      }
    } else if (file_type_of(path / "model.safetensors", "model directory") !=
               fs::file_type::not_found) {
      paths.push_back(path / "model.safetensors");
    } else {
      std::error_code ec;
      for (fs::directory_iterator it(path, ec), end; !ec && it != end; it.increment(ec))
        if (it->path().extension() == ".safetensors") paths.push_back(it->path());
      ADAMAS_CHECK(!ec, "cannot list model directory {}: {}", path.string(), ec.message());
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
  // The index must agree with the shards: a tensor elsewhere means a stale or mixed-up index.
  for (const auto& [name, shard] : weight_map) {
    const std::string want = (path / shard).string();
    const TensorView* t = find(name);
    ADAMAS_CHECK(t != nullptr, "{}: tensor '{}' is mapped to {}, which does not contain it",
                 (path / "model.safetensors.index.json").string(), name, want);
    ADAMAS_CHECK(*t->file == want, "{}: tensor '{}' is mapped to {} but found in {}",
                 (path / "model.safetensors.index.json").string(), name, want, *t->file);
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
