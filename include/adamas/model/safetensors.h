// Memory-mapped safetensors files: one file, or a sharded checkpoint described by
// model.safetensors.index.json. Tensors are views into the mapping (no copies), except tensors the
// file leaves unaligned for their element size (the format allows it), which are copied to aligned
// memory. A corrupt header (duplicate keys, an empty tensor name, a tensor whose byte range does
// not match its dtype and shape, lies outside the file or overlaps another one), an index that
// names a shard outside the model directory, a missing shard or a tensor not in the shard the index
// names throws adamas::Error naming the file and tensor.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace adamas::model {

enum class TensorType { kF32, kF16, kBF16, kI32, kI64, kOther };

std::string_view tensor_type_name(TensorType t);
size_t tensor_type_size(TensorType t);  // 0 for kOther

struct TensorView {
  std::string name;
  TensorType type = TensorType::kOther;
  std::string type_name;  // as written in the header ("F32", "BF16", "U8", ...)
  std::vector<int64_t> shape;
  const std::byte* data = nullptr;
  size_t bytes = 0;
  const std::string* file = nullptr;  // the file it lives in (for messages)

  int64_t numel() const;
  std::string shape_str() const;  // "[4096, 128]"
};

class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::filesystem::path& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  const std::map<std::string, TensorView>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  size_t file_bytes() const { return size_; }
  size_t copied_bytes() const { return copied_bytes_; }  // of tensors copied to be aligned

 private:
  void check_no_overlap(const std::byte* data) const;
  void align_tensors();

  std::string path_;
  void* map_ = nullptr;
  size_t size_ = 0;
  std::unique_ptr<std::byte[]> aligned_;  // the copies of unaligned tensors
  size_t copied_bytes_ = 0;
  std::map<std::string, TensorView> tensors_;
  std::map<std::string, std::string> metadata_;
};

// All tensors of a checkpoint directory (or of one .safetensors file).
class TensorStore {
 public:
  // dir: uses model.safetensors.index.json if present, else model.safetensors, else the single
  // *.safetensors file in it. A path to a .safetensors file opens that file alone.
  explicit TensorStore(const std::filesystem::path& path);

  const TensorView* find(std::string_view name) const;
  // The tensor, which must exist, have a float type (F32/F16/BF16) and this shape.
  const TensorView& require(std::string_view name, std::vector<int64_t> shape) const;
  std::vector<std::string> names() const;
  const std::vector<std::unique_ptr<SafetensorsFile>>& files() const { return files_; }
  std::string source() const { return source_; }

 private:
  std::string source_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, const TensorView*, std::less<>> index_;
};

}  // namespace adamas::model
