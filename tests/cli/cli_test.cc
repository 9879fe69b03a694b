// The adamas command line on bad input: every case runs the real binary and must end with a
// non-zero exit status (not a signal), a message naming the problem, and no file left behind;
// a failing run must not touch an earlier result. docs/bad-inputs.md lists these cases.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace {

namespace fs = std::filesystem;

struct Result {
  int status = -1;  // exit status; 128 + n for a signal n (the shell's convention)
  std::string output;
};

// Runs `adamas <args>` in `dir` (stdout and stderr together). {model} in args is the shipped model.
Result run(const std::string& args, const fs::path& dir) {
  std::string a = args;
  const std::string model = std::string(ADAMAS_SOURCE_DIR) + "/models/adamas-tiny-8k";
  for (size_t at; (at = a.find("{model}")) != std::string::npos;) a.replace(at, 7, model);
  const std::string cmd =
      "cd '" + dir.string() + "' && exec '" + std::string(ADAMAS_CLI) + "' " + a + " 2>&1";
  Result r;
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return r;
  std::array<char, 4096> buf{};
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) r.output.append(buf.data(), n);
  const int w = pclose(p);
  r.status = WIFEXITED(w) ? WEXITSTATUS(w) : 128 + (WIFSIGNALED(w) ? WTERMSIG(w) : 0);
  return r;
}

class TempDir {
 public:
  TempDir() {
    path_ = fs::temp_directory_path() /
            ("adamas-cli-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter_++));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }
  bool empty() const { return fs::is_empty(path_); }

 private:
  fs::path path_;
  static inline int counter_ = 0;
};

struct BadInput {
  const char* args;
  const char* message;  // a part of what the tool must say
};

// The cases of docs/bad-inputs.md (command line).
constexpr BadInput kBadInputs[] = {
    // Sizes that once divided by zero or drew from an empty range.
    {"generate --model {model} --prompt hi --page-size 0", "--page-size: Value 0 not in range"},
    {"eval passkey --model {model} --page-size 0", "--page-size: Value 0 not in range"},
    {"eval ppl --model {model} --page-size -4", "--page-size: Value -4 not in range"},
    {"recall --page-size 0", "--page-size: Value 0 not in range"},
    {"recall --kv-heads 0", "--kv-heads: Value 0 not in range"},
    {"recall --heads 0", "--heads: Value 0 not in range"},
    {"recall --head-dim 0", "--head-dim: must be a power of two in [16, 256], got 0"},
    {"recall --head-dim 48", "--head-dim: must be a power of two in [16, 256], got 48"},
    {"recall --heads 32 --kv-heads 5", "--heads 32 must be a multiple of --kv-heads 5"},
    {"recall --context 1", "--context: Value 1 not in range"},
    {"recall --budgets 64,0", "--budgets: Value 0 not in range"},
    {"recall --steps 0", "--steps: Value 0 not in range"},
    {"recall --relevant 1.5", "--relevant: Value 1.5 not in range"},
    {"recall --agreement -0.1", "--agreement: Value -0.1 not in range"},
    {"bench --heads 0", "--heads: Value 0 not in range"},
    {"bench --kv-heads 0", "--kv-heads: Value 0 not in range"},
    {"bench --head-dim 100", "--head-dim: must be a power of two in [16, 256], got 100"},
    {"bench --heads 6 --kv-heads 4", "--heads (6) must be a positive multiple of --kv-heads (4)"},
    {"bench --contexts 0", "--contexts: Value 0 not in range"},
    {"bench --budgets -1", "--budgets: Value -1 not in range"},
    {"bench --batch 0", "--batch: Value 0 not in range"},
    {"bench --reps 0", "--reps: Value 0 not in range"},
    // An unbounded thread count handed to OpenMP.
    {"bench --threads 100000", "--threads: Value 100000 not in range"},
    {"bench-matvec --rows 17", "--rows: Value 17 not in range"},
    {"bench-matvec --dtypes fp8", "--dtypes: unknown dtype 'fp8': expected f32, f16 or bf16"},
    {"bench-matvec --model /nonexistent",
     "--model /nonexistent: /nonexistent/config.json not found"},
    {"recall --threads 0", "--threads: Value 0 not in range"},
    {"generate --model {model} --prompt hi --threads -2", "--threads: Value -2 not in range"},
    {"demo --threads 5000", "--threads: Value 5000 not in range"},
    {"eval recall --model {model} --jobs 0", "--jobs: Value 0 not in range"},
    // Flags that were silently ignored.
    {"generate --model {model} --prompt hi --budget 0", "--budget: Value 0 not in range"},
    {"generate --model {model} --prompt hi --dense-layers -3",
     "--dense-layers: Value -3 not in range"},
    {"generate --model {model} --prompt hi --max-new-tokens -1",
     "--max-new-tokens: Value -1 not in range"},
    {"generate --model {model} --prompt hi --top-p 2", "--top-p: Value 2 not in range"},
    {"generate --model {model} --prompt hi --top-k -1", "--top-k: Value -1 not in range"},
    {"generate --model {model} --prompt hi --temperature -1",
     "--temperature: Value -1 not in range"},
    {"generate --model {model} --prompt hi --stop-token -5", "--stop-token: Value -5 not in range"},
    {"generate --model {model} --prompt hi --prefill-chunk 0",
     "--prefill-chunk: Value 0 not in range"},
    {"generate --model {model}", "give --prompt TEXT or --prompt-file F"},
    {"demo --key 5", "--key: Value 5 not in range"},
    {"demo --budget 0", "--budget: Value 0 not in range"},
    {"demo --depth 2", "--depth: Value 2 not in range"},
    {"demo --model {model} --context 10", "a passkey prompt needs at least"},
    {"eval passkey --model {model} --depths 0.5,1.5", "--depths: Value 1.5 not in range"},
    {"eval passkey --model {model} --lengths 0", "--lengths: Value 0 not in range"},
    {"eval passkey --model {model} --trials 0", "--trials: Value 0 not in range"},
    {"eval passkey --model {model} --keys 0", "--keys: Value 0 not in range"},
    {"eval ppl --model {model} --skip-docs -1", "--skip-docs: Value -1 not in range"},
    {"eval ppl --model {model} --tokens 0", "--tokens: Value 0 not in range"},
    {"eval ppl --model {model} --bucket 0", "--bucket: Value 0 not in range"},
    {"eval recall --model {model} --steps 0", "--steps: Value 0 not in range"},
    {"eval recall --model {model} --summary-from-layer -1",
     "--summary-from-layer: Value -1 not in range"},
    // Output paths, checked before the work.
    {"recall --csv missing-dir/r.csv", "--csv missing-dir/r.csv: its directory does not exist"},
    {"bench-matvec --csv missing-dir/m.csv",
     "--csv missing-dir/m.csv: its directory does not exist"},
    {"bench --csv .", "--csv .: is a directory, not a file"},
    {"eval ppl --model {model} --out-dir /dev/null/x",
     "--out-dir /dev/null/x: cannot create the directory"},
    {"tokenize --model {model}", "give --text TEXT or --text-file F"},
    {"tokenize --model {model} --text hi --out missing/x.json",
     "--out missing/x.json: its directory does not exist"},
    {"generate --model {model} --prompt hi --logits-json missing/x.json",
     "--logits-json missing/x.json: its directory does not exist"},
    // Unknown subcommands and options.
    {"", "A subcommand is required"},
    {"frobnicate", "unknown command 'frobnicate' (commands: demo, bench"},
    {"generate --model {model} --prompt hi --no-such-flag", "--no-such-flag"},
    {"generate --model /nonexistent --prompt hi", "/nonexistent"},
};

TEST(CliBadInput, EveryCaseFailsWithItsMessageAndLeavesNoFile) {
  for (const BadInput& c : kBadInputs) {
    SCOPED_TRACE(std::string("adamas ") + c.args);
    TempDir dir;
    const Result r = run(c.args, dir.path());
    EXPECT_GE(r.status, 1) << r.output;
    EXPECT_LT(r.status, 128) << "killed by a signal:\n" << r.output;
    EXPECT_NE(r.output.find(c.message), std::string::npos)
        << "expected the message to contain: " << c.message << "\ngot:\n"
        << r.output;
    EXPECT_TRUE(dir.empty()) << "a file was left behind";
  }
}

std::string read_file(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// A run that fails after its result file was opened leaves the earlier result as it was.
TEST(CliBadInput, FailedRunsKeepTheEarlierResult) {
  TempDir dir;
  const fs::path old = dir.path() / "old.csv";
  std::ofstream(old) << "earlier result\n";
  const Result bench =
      run("bench --csv old.csv --contexts 64 --budgets 16 --policy bogus", dir.path());
  EXPECT_GE(bench.status, 1) << bench.output;
  EXPECT_LT(bench.status, 128) << bench.output;
  EXPECT_EQ(read_file(old), "earlier result\n");
  const Result recall =
      run("recall --csv old.csv --context 64 --budgets 16 --policies bogus", dir.path());
  EXPECT_GE(recall.status, 1) << recall.output;
  EXPECT_LT(recall.status, 128) << recall.output;
  EXPECT_EQ(read_file(old), "earlier result\n");
  EXPECT_EQ(std::distance(fs::directory_iterator(dir.path()), fs::directory_iterator()), 1)
      << "a temporary file was left behind";
}

// A run that succeeds writes its result whole.
TEST(CliBadInput, ASuccessfulRunReplacesTheResult) {
  TempDir dir;
  const fs::path out = dir.path() / "r.csv";
  std::ofstream(out) << "earlier result\n";
  const Result r =
      run("recall --csv r.csv --context 256 --budgets 16 --heads 2 --kv-heads 1 "
          "--head-dim 16 --steps 1 --threads 1 --policies full",
          dir.path());
  ASSERT_EQ(r.status, 0) << r.output;
  const std::string text = read_file(out);
  EXPECT_EQ(text.rfind("policy,budget,context", 0), 0u) << text;
  EXPECT_EQ(std::distance(fs::directory_iterator(dir.path()), fs::directory_iterator()), 1);
}

// The peer-check outputs: ids as a Hugging Face tokenizer call gives them, and generate's JSON.
TEST(CliPeerCheck, TokenizeAndLogitsJson) {
  TempDir dir;
  const Result tok =
      run("tokenize --model {model} --text 'Hello world' --out ids.json", dir.path());
  ASSERT_EQ(tok.status, 0) << tok.output;
  const std::string ids = read_file(dir.path() / "ids.json");
  EXPECT_EQ(ids.rfind("{\"input_ids\":[1,", 0), 0u) << ids;  // BOS first, as the config says
  const Result no_bos = run("tokenize --model {model} --text 'Hello world' --no-bos", dir.path());
  ASSERT_EQ(no_bos.status, 0) << no_bos.output;
  EXPECT_EQ(no_bos.output.find("\"input_ids\":[1,"), std::string::npos) << no_bos.output;
  const Result gen =
      run("generate --model {model} --prompt 'The kernel' --max-new-tokens 3 "
          "--ignore-eos --threads 1 --logits-json out.json",
          dir.path());
  ASSERT_EQ(gen.status, 0) << gen.output;
  const std::string json = read_file(dir.path() / "out.json");
  EXPECT_NE(json.find("\"prompt_ids\":[1,"), std::string::npos) << json.substr(0, 200);
  EXPECT_NE(json.find("\"generated_ids\":["), std::string::npos);
  // 8192 logits: 8191 commas inside the array.
  const size_t a = json.find("\"prompt_last_logits\":["), b = json.find(']', a);
  ASSERT_NE(a, std::string::npos);
  EXPECT_EQ(std::count(json.begin() + a, json.begin() + b, ','), 8191);
}

}  // namespace
