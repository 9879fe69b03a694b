#include "bench_matvec_command.h"

#include <cblas.h>
#include <fmt/format.h>
#include <omp.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstring>
#include <fstream>
#include <memory>
#include <random>
#include <vector>

#include "adamas/common/dtype.h"
#include "adamas/common/error.h"
#include "adamas/common/simd.h"
#include "adamas/core/matvec.h"
#include "adamas/model/config.h"
#include "adamas/model/ops.h"
#include "adamas/runtime/bandwidth.h"
#include "flag_checks.h"
#include "progress.h"
#include "result_file.h"

extern "C" void openblas_set_num_threads(int);

namespace adamas::cli {
namespace {

// One weight matrix of a decode step: out_rows × cols, `per_step` of them read per token.
struct Shape {
  std::string name;
  int rows = 0, cols = 0, per_step = 0;
};

std::vector<Shape> decode_shapes(const model::ModelConfig& c) {
  const int L = c.num_layers, h = c.hidden_size, q = c.num_heads * c.head_dim,
            kv = c.num_kv_heads * c.head_dim, ff = c.intermediate_size;
  return {{"q", q, h, L},     {"k/v", kv, h, 2 * L},
          {"o", h, q, L},     {"gate/up", ff, h, 2 * L},
          {"down", h, ff, L}, {"lm_head", c.vocab_size, h, 1}};
}

// Llama-3.2-1B, the default when no --model is given.
model::ModelConfig llama32_1b() {
  model::ModelConfig c;
  c.num_layers = 16;
  c.hidden_size = 2048;
  c.num_heads = 32;
  c.num_kv_heads = 8;
  c.head_dim = 64;
  c.intermediate_size = 8192;
  c.vocab_size = 128256;
  return c;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}

// One buffer, several times the last-level cache, holding copies of the matrix being timed; the
// copies are read in turn, so that every timed call streams its weights from memory as a decode
// step does. Allocated once (page faults and zeroing would otherwise dominate the run).
class ColdCopies {
 public:
  explicit ColdCopies(size_t largest_matrix) {
    const long l3 = sysconf(_SC_LEVEL3_CACHE_SIZE);
    const size_t cold = std::max(size_t{768} << 20, l3 > 0 ? 4 * size_t(l3) : 0);
    data_.resize(std::max(cold, 2 * largest_matrix));
  }
  // Fills the buffer with copies of a random s.rows × s.cols matrix of dtype t.
  void fill(const Shape& s, DType t, std::mt19937& rng) {
    bytes_ = size_t(s.rows) * s.cols * dtype_size(t);
    copies_ = data_.size() / bytes_;
    // N(0, 0.02²) values (only their being normal numbers matters to the speed), made once per
    // 64K and scaled, converted to the dtype, and copied.
    std::vector<float> f(size_t(s.rows) * s.cols);
    std::normal_distribution<float> normal(0.f, 0.02f);
    constexpr size_t kDistinct = 1 << 16;
    for (size_t i = 0; i < std::min(f.size(), kDistinct); ++i) f[i] = normal(rng);
    for (size_t i = kDistinct; i < f.size(); ++i)
      f[i] = f[i % kDistinct] * float(1 + (i / kDistinct) % 7);
    convert_from_f32(f.data(), data_.data(), t, f.size());
    for (size_t c = 1; c < copies_; ++c)
      std::memcpy(data_.data() + c * bytes_, data_.data(), bytes_);
    matrix_ = {nullptr, t, s.rows, s.cols};
    next_ = 0;
  }
  size_t copies() const { return copies_; }
  const model::Matrix& next() {
    matrix_.data = data_.data() + (next_++ % copies_) * bytes_;
    return matrix_;
  }

 private:
  std::vector<std::byte> data_;
  size_t bytes_ = 0, copies_ = 0, next_ = 0;
  model::Matrix matrix_;
};

struct Point {
  std::string impl, dtype;
  Shape shape;
  int n = 0;
  double ms = 0, gbps = 0;
};

// Median ms of `reps` calls of f(matrix) over the cold copies, after one pass to warm up.
template <class F>
double time_calls(ColdCopies& w, int reps, F&& f) {
  for (size_t i = 0; i < w.copies(); ++i) f(w.next());
  std::vector<double> ms;
  for (int r = 0; r < reps; ++r) {
    const model::Matrix& m = w.next();
    const auto t0 = std::chrono::steady_clock::now();
    f(m);
    ms.push_back(
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  return median(ms);
}

void validate(const BenchMatvecOptions& o) {
  for (int n : o.rows)
    if (n < 1 || n > kMatvecMaxRows)
      throw Error(
          fmt::format("--rows: each value must be in [1, {}] (decode batches; larger "
                      "products go to sgemm), got {}",
                      kMatvecMaxRows, n));
  for (const std::string& d : o.dtypes)
    if (d != "f32" && d != "f16" && d != "bf16")
      throw Error(fmt::format("--dtypes: unknown dtype '{}': expected f32, f16 or bf16", d));
}

}  // namespace

int run_bench_matvec(const BenchMatvecOptions& o) {
  validate(o);
  model::ModelConfig config = llama32_1b();
  std::string subject = "Llama-3.2-1B shape";
  if (!o.model.empty()) {
    try {
      config = model::load_config(o.model);
    } catch (const Error& e) {
      throw Error(fmt::format("--model {}: {}", o.model, e.what()));
    }
    subject = o.model;
  }
  ResultFile result(o.csv, "--csv");
  std::ofstream& csv = result.out();
  const int threads = o.threads > 0 ? o.threads : omp_get_max_threads();
  omp_set_num_threads(threads);
  const std::vector<Shape> shapes = decode_shapes(config);

  fmt::print("adamas bench-matvec: the decode products of {} ({} layers, hidden {})\n", subject,
             config.num_layers, config.hidden_size);
  fmt::print(
      "model::linear (adamas::matvec, weights converted in registers); {} threads; SIMD {}; "
      "median of {} calls, each on a different copy of the weights (together ≥ 4x the L3)\n",
      threads, simd_target(), o.reps);
  // The read-only bandwidth, measured before each dtype's products and at the end: shared hosts
  // move by ±30% within minutes, and the best of the run is the ceiling the products are held to.
  std::vector<double> reads{model::host_read_bandwidth_gbps(threads)};
  fmt::print("read-only bandwidth measured now: {:.1f} GB/s\n\n", reads[0]);

  std::vector<Point> points;
  std::mt19937 rng(7);
  auto record = [&](Point p) {
    const double bytes = double(p.shape.rows) * p.shape.cols *
                         (p.impl == "openblas" ? 4 : dtype_size(parse_dtype(p.dtype)));
    p.gbps = bytes / (p.ms * 1e6);
    points.push_back(p);
  };

  const int impls = static_cast<int>(o.dtypes.size()) + (o.peer ? 1 : 0);
  Progress progress("matvec", int64_t{impls} * shapes.size() * o.rows.size());
  int64_t done = 0;
  std::vector<float> x(size_t(kMatvecMaxRows) *
                       std::max(config.hidden_size, config.intermediate_size));
  std::normal_distribution<float> normal;
  for (float& v : x) v = normal(rng);
  std::vector<float> y(size_t(kMatvecMaxRows) *
                       std::max(config.vocab_size, config.intermediate_size));
  size_t largest = 0;
  for (const Shape& s : shapes) largest = std::max(largest, size_t(s.rows) * s.cols * 4);
  ColdCopies w(largest);
  for (const std::string& name : o.dtypes) {
    if (&name != &o.dtypes.front()) reads.push_back(model::host_read_bandwidth_gbps(threads));
    const DType t = parse_dtype(name);
    for (const Shape& s : shapes) {
      w.fill(s, t, rng);
      for (int n : o.rows) {
        const double ms = time_calls(w, o.reps, [&](const model::Matrix& m) {
          model::linear(x.data(), n, m, nullptr, y.data(), threads);
        });
        record({"adamas", name, s, n, ms});
        progress.update(++done);
      }
    }
  }
  if (o.peer) {  // OpenBLAS on fp32 copies of the weights: sgemv for one row, sgemm for more
    reads.push_back(model::host_read_bandwidth_gbps(threads));
    openblas_set_num_threads(threads);
    for (const Shape& s : shapes) {
      w.fill(s, DType::kF32, rng);
      for (int n : o.rows) {
        const double ms = time_calls(w, o.reps, [&](const model::Matrix& m) {
          const float* W = static_cast<const float*>(m.data);
          if (n == 1)
            cblas_sgemv(CblasRowMajor, CblasNoTrans, s.rows, s.cols, 1.f, W, s.cols, x.data(), 1,
                        0.f, y.data(), 1);
          else
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, s.rows, s.cols, 1.f, x.data(),
                        s.cols, W, s.cols, 0.f, y.data(), s.rows);
        });
        record({"openblas", "f32", s, n, ms});
        progress.update(++done);
      }
    }
    openblas_set_num_threads(1);  // the runtime's prefill calls sgemm from its own threads
  }
  progress.finish();
  reads.push_back(model::host_read_bandwidth_gbps(threads));
  const double read_gbps = *std::max_element(reads.begin(), reads.end());
  csv << "impl,dtype,matrix,rows,cols,per_step,n,threads,ms,gbps,pct_read,gflops,read_gbps,"
         "read_gbps_min\n";
  for (const Point& p : points)
    csv << fmt::format("{},{},{},{},{},{},{},{},{:.6g},{:.4g},{:.1f},{:.4g},{:.2f},{:.2f}\n",
                       p.impl, p.dtype, p.shape.name, p.shape.rows, p.shape.cols, p.shape.per_step,
                       p.n, threads, p.ms, p.gbps, 100 * p.gbps / read_gbps,
                       2.0 * p.n * p.shape.rows * p.shape.cols / (p.ms * 1e6), read_gbps,
                       *std::min_element(reads.begin(), reads.end()));
  fmt::print(
      "read-only bandwidth: {} measurements through the run, {:.1f} to {:.1f} GB/s; the "
      "percentages are of the best, {:.1f}\n\n",
      reads.size(), *std::min_element(reads.begin(), reads.end()), read_gbps, read_gbps);

  // Tables: GB/s of weights read and % of the read-only bandwidth, per matrix and row count, and
  // the whole decode step's products (bytes / time summed with each matrix's count per step).
  auto table = [&](const std::string& impl, const std::string& dtype) {
    fmt::print("{} {}: weight GB/s (% of read-only) by rows n\n{:<10} {:>13}", impl, dtype,
               "matrix", "rows x cols");
    for (int n : o.rows) fmt::print(" {:>13}", fmt::format("n={}", n));
    fmt::print("\n");
    std::vector<double> step_bytes(o.rows.size()), step_ms(o.rows.size());
    for (const Shape& s : shapes) {
      fmt::print("{:<10} {:>13}", s.name, fmt::format("{}x{}", s.rows, s.cols));
      for (size_t k = 0; k < o.rows.size(); ++k)
        for (const Point& p : points)
          if (p.impl == impl && p.dtype == dtype && p.shape.name == s.name && p.n == o.rows[k]) {
            fmt::print(" {:>6.1f} ({:>3.0f}%)", p.gbps, 100 * p.gbps / read_gbps);
            step_bytes[k] += p.gbps * p.ms * 1e6 * s.per_step;
            step_ms[k] += p.ms * s.per_step;
          }
      fmt::print("\n");
    }
    fmt::print("{:<24}", "decode step");
    for (size_t k = 0; k < o.rows.size(); ++k) {
      const double gbps = step_bytes[k] / (step_ms[k] * 1e6);
      fmt::print(" {:>6.1f} ({:>3.0f}%)", gbps, 100 * gbps / read_gbps);
    }
    fmt::print("   ({:.2f} ms at n={})\n\n", step_ms[0], o.rows[0]);
  };
  for (const std::string& d : o.dtypes) table("adamas", d);
  if (o.peer) table("openblas", "f32");
  result.commit();
  fmt::print(
      "read-only bandwidth {:.1f} GB/s (the best of the run; a sum over 512 MiB, {} "
      "threads); wrote {}\n",
      read_gbps, threads, o.csv);
  return 0;
}

void add_bench_matvec_command(CLI::App& app, int& status) {
  auto o = std::make_shared<BenchMatvecOptions>();
  CLI::App* cmd = app.add_subcommand(
      "bench-matvec",
      "Time the decode step's matrix products (1-16 rows x f32/f16/bf16 weights from memory) "
      "against the read-only bandwidth and OpenBLAS; CSV to --csv");
  cmd->add_option("--model", o->model,
                  "checkpoint directory whose config.json gives the shapes (default: the "
                  "Llama-3.2-1B shape)");
  cmd->add_option("--rows", o->rows, "rows per product (decode batch), each in [1, 16]")
      ->delimiter(',')
      ->check(positive(kMatvecMaxRows))
      ->capture_default_str();
  cmd->add_option("--dtypes", o->dtypes, "weight dtypes: f32, f16, bf16")
      ->delimiter(',')
      ->capture_default_str();
  cmd->add_option("--threads", o->threads, "threads (default: all cores)")->check(threads_range());
  cmd->add_option("--reps", o->reps, "timed calls per point (median reported)")
      ->check(positive(100000))
      ->capture_default_str();
  cmd->add_flag("!--no-peer", o->peer, "skip OpenBLAS on fp32 weights");
  cmd->add_option("--csv", o->csv, "CSV output file")->capture_default_str();
  cmd->callback([o, &status] { status = run_bench_matvec(*o); });
}

}  // namespace adamas::cli
