// A result file written whole or not at all, opened before the work it records.
//
// The text goes to a temporary file beside the target (created by the constructor, so that an
// unwritable path fails before any measurement, naming the flag), and commit() renames it over
// the target. Without commit() (an error, an interruption) the temporary file is removed and a
// previous result at the target is left as it was.
#pragma once

#include <filesystem>
#include <fstream>
#include <string>

namespace adamas::cli {

class ResultFile {
 public:
  // flag: the option that named the path ("--csv", "--out-dir"), for error messages.
  ResultFile(std::filesystem::path path, std::string flag);
  ResultFile(const ResultFile&) = delete;
  ResultFile& operator=(const ResultFile&) = delete;
  ~ResultFile();

  std::ofstream& out() { return out_; }
  const std::filesystem::path& path() const { return path_; }
  // Flushes, checks that every write succeeded, and renames the file into place.
  void commit();

 private:
  std::filesystem::path path_, partial_;
  std::string flag_;
  std::ofstream out_;
  bool committed_ = false;
};

// The whole of an input file named by `flag`, or adamas::Error naming both.
std::string read_input_file(const std::filesystem::path& path, const std::string& flag);

// Creates `dir` (and its parents) if needed, before any work; throws adamas::Error naming `flag`
// when it cannot (a regular file in the way, no permission).
void prepare_output_dir(const std::filesystem::path& dir, const std::string& flag);

}  // namespace adamas::cli
