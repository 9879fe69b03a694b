#include "result_file.h"

#include <fmt/format.h>
#include <unistd.h>

#include <sstream>
#include <system_error>
#include <utility>

#include "adamas/common/error.h"

namespace adamas::cli {
namespace fs = std::filesystem;

ResultFile::ResultFile(fs::path path, std::string flag)
    : path_(std::move(path)), flag_(std::move(flag)) {
  if (path_.empty()) throw Error(fmt::format("{}: the path is empty", flag_));
  std::error_code ec;
  if (fs::is_directory(path_, ec))
    throw Error(fmt::format("{} {}: is a directory, not a file", flag_, path_.string()));
  partial_ = path_;
  partial_ += fmt::format(".partial-{}", static_cast<long>(::getpid()));
  out_.open(partial_, std::ios::trunc);
  if (!out_) {
    const fs::path parent = path_.parent_path().empty() ? fs::path(".") : path_.parent_path();
    const std::string why = !fs::exists(parent, ec)         ? "its directory does not exist"
                            : !fs::is_directory(parent, ec) ? "its parent is not a directory"
                                                            : "cannot create a file there";
    throw Error(fmt::format("{} {}: {}", flag_, path_.string(), why));
  }
}

ResultFile::~ResultFile() {
  if (committed_) return;
  out_.close();
  std::error_code ec;
  fs::remove(partial_, ec);  // best effort: the error being handled matters more
}

void ResultFile::commit() {
  out_.flush();
  out_.close();
  if (!out_) throw Error(fmt::format("{} {}: writing failed (disk full?)", flag_, path_.string()));
  std::error_code ec;
  fs::rename(partial_, path_, ec);
  if (ec)
    throw Error(fmt::format("{} {}: cannot move the result into place: {}", flag_, path_.string(),
                            ec.message()));
  committed_ = true;
}

std::string read_input_file(const fs::path& path, const std::string& flag) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(fmt::format("{} {}: cannot read it", flag, path.string()));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void prepare_output_dir(const fs::path& dir, const std::string& flag) {
  if (dir.empty()) throw Error(fmt::format("{}: the path is empty", flag));
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec || !fs::is_directory(dir))
    throw Error(fmt::format("{} {}: cannot create the directory: {}", flag, dir.string(),
                            ec ? ec.message() : "a file is in the way"));
}

}  // namespace adamas::cli
