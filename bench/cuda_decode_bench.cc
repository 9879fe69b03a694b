// adamas_cuda_bench: one layer's decode attention on the GPU, per stage, against our dense
// flash-decoding kernel and a device-to-device copy measured in the same run.
//
// For each (heads, batch, context) it builds a DeviceKVCache of R replicas of the batch (distinct
// random sequences), R chosen so that one rotation reads at least 4× the L2 in key codes alone;
// step i runs on replica i mod R, so no step finds its data in the L2. Each point is the median of
// CUDA-event times over repetitions after warm-up: eager steps (the host issues each launch; the
// StageTimer's events give the per-stage times) and, unless --no-graph, the same step replayed as
// a CUDA graph (device time without the host's launch gaps). Output: a table on stdout, CSV (one
// row per heads / batch / context / budget), optionally JSON; progress on stderr.
// bench/sdpa_baseline.py times PyTorch's SDPA on the same grid; bench/plot_cuda_bench.py joins
// the two CSVs into the figure and the summary against the targets.
#include <cuda_runtime_api.h>
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <array>
#include <chrono>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <initializer_list>
#include <string>
#include <vector>

#include "adamas/cache/paged_kv_cache.h"
#include "adamas/common/dtype.h"
#include "adamas/common/error.h"
#include "adamas/core/codes.h"
#include "adamas/cuda/decode.h"
#include "adamas/cuda/device_cache.h"
#include "adamas/cuda/device_layer.h"
#include "adamas/cuda/kernels.h"
#include "adamas/cuda/runtime.h"
#include "adamas/policy/policy.h"
#include "cuda_fill.h"

namespace {

using adamas::Error;
using adamas::cuda::check;
using adamas::cuda::DeviceBuffer;

constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;

struct Options {
  std::vector<std::string> heads{"32/32", "32/8"};
  std::vector<int> contexts{8192, 32768, 131072, 524288};
  std::vector<int> budgets{64, 128, 256, 512, 1024, 2048, 4096};
  std::vector<int> batches{1, 8};
  std::string dtype = "f16";
  int head_dim = 128;
  int page_size = 64;
  int bits = 2;
  std::string distance = "l1";
  std::string gqa = "per-head";  // per-head | shared | both
  int reps = 50;
  int min_reps = 5;
  int warmup = 3;
  double point_ms = 400;  // stop repeating a point once this much device time was measured
  bool graph = true;      // also time each step as a CUDA graph replay (no launch gaps)
  int chunk = 8192;       // prefill tokens per append call
  float key_std = 4.f;
  float value_std = 1.f;
  float query_std = 4.f;
  double rotate_l2 = 4;  // one rotation over the replicas reads ≥ this × L2 of key codes
  int max_replicas = 256;
  double mem_cap_gb = 100;  // K/V + codes of all replicas
  double copy_gib = 2;
  std::string csv = "cuda_bench.csv";
  std::string json;
  bool quick = false;
};

struct Heads {
  int q = 0, kv = 0;
  std::string name() const { return fmt::format("{}/{}", q, kv); }
};

// Everything measured for one budget of one (heads, batch, context).
struct Row {
  Heads heads;
  int batch = 0, context = 0, budget = 0;
  std::string gqa;
  float encode = 0, estimate = 0, topk = 0, attention = 0, sparse = 0, dense = 0;
  float sparse_graph = 0, dense_graph = 0;  // 0: not measured
  double speedup = 0, est_gbps = 0, est_pct = 0, dense_gbps = 0, dense_pct = 0;
  int replicas = 0, reps = 0;
};

uint64_t mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}
uint64_t seed_of(std::initializer_list<uint64_t> parts) {
  uint64_t s = 0x243f6a8885a308d3ull;
  for (uint64_t p : parts) s = mix64(s ^ p);
  return s;
}

float median(std::vector<float> v) {
  if (v.empty()) return 0.f;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5f * (v[n / 2 - 1] + v[n / 2]);
}

std::string today() {
  const std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d", std::localtime(&t));
  return buf;
}

std::string csv_quote(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

std::string json_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

std::string gib(double bytes) { return fmt::format("{:.2f} GiB", bytes / kGiB); }
std::string context_name(int c) {
  return c % 1024 == 0 ? fmt::format("{}K", c / 1024) : fmt::format("{}", c);
}

class Event {
 public:
  Event() { check(cudaEventCreate(&e_), "cudaEventCreate"); }
  ~Event() { cudaEventDestroy(e_); }
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  void record(cudaStream_t s) { check(cudaEventRecord(e_, s), "cudaEventRecord"); }
  // Milliseconds from `start` to this event (waits for this one).
  float since(const Event& start) const {
    check(cudaEventSynchronize(e_), "cudaEventSynchronize");
    float ms = 0;
    check(cudaEventElapsedTime(&ms, start.e_, e_), "cudaEventElapsedTime");
    return ms;
  }

 private:
  cudaEvent_t e_ = nullptr;
};

class Stream {
 public:
  Stream() { check(cudaStreamCreateWithFlags(&s_, cudaStreamNonBlocking), "cudaStreamCreate"); }
  ~Stream() { cudaStreamDestroy(s_); }
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  operator cudaStream_t() const { return s_; }

 private:
  cudaStream_t s_ = nullptr;
};

struct Bandwidth {
  double copy_gbps = 0;  // bytes read + written
  double read_gbps = 0;  // bytes read by a kernel that only reads
};

// Device-to-device copy (cudaMemcpyAsync) of `bytes` and a read-only pass over them: medians of
// 15 event-timed repetitions after 3 warm-ups. GB/s = 1e9 bytes per second.
Bandwidth measure_bandwidth(size_t bytes, cudaStream_t stream) {
  bytes = bytes / 256 * 256;
  DeviceBuffer<std::byte> src(bytes), dst(bytes);
  DeviceBuffer<uint32_t> sink(1);
  adamas::bench::fill_normal(src.data(), adamas::DType::kF32, bytes / 4, 1.f, 7, stream);
  dst.fill_bytes(0x55, stream);
  Event start, stop;
  auto time = [&](auto&& op) {
    std::vector<float> ms;
    for (int i = 0; i < 18; ++i) {
      start.record(stream);
      op();
      stop.record(stream);
      const float t = stop.since(start);
      if (i >= 3) ms.push_back(t);
    }
    return median(ms);
  };
  const float copy_ms = time([&] {
    check(cudaMemcpyAsync(dst.data(), src.data(), bytes, cudaMemcpyDeviceToDevice, stream),
          "cudaMemcpyAsync (device to device)");
  });
  const float read_ms =
      time([&] { adamas::bench::read_only_pass(src.data(), bytes, sink.data(), stream); });
  Bandwidth bw;
  bw.copy_gbps = 2.0 * bytes / (copy_ms * 1e-3) / 1e9;
  bw.read_gbps = double(bytes) / (read_ms * 1e-3) / 1e9;
  return bw;
}

Heads parse_heads(const std::string& s) {
  const size_t slash = s.find('/');
  Heads h;
  try {
    if (slash == std::string::npos) {
      h.q = h.kv = std::stoi(s);
    } else {
      h.q = std::stoi(s.substr(0, slash));
      h.kv = std::stoi(s.substr(slash + 1));
    }
  } catch (const std::exception&) {
    throw Error(fmt::format("--heads: expected q/kv like 32/8, got '{}'", s));
  }
  if (h.q < 1 || h.kv < 1 || h.q % h.kv != 0)
    throw Error(
        fmt::format("--heads: query heads must be a positive multiple of KV heads, got '{}'", s));
  return h;
}

void validate(const Options& o) {
  auto fail = [](const std::string& m) { throw Error(m); };
  if (o.heads.empty() || o.contexts.empty() || o.budgets.empty() || o.batches.empty())
    fail("--heads, --contexts, --budgets and --batches need values");
  for (int c : o.contexts)
    if (c < 2) fail(fmt::format("--contexts: each context must be ≥ 2 tokens, got {}", c));
  for (int b : o.budgets)
    if (b < 1) fail(fmt::format("--budgets: each budget must be ≥ 1, got {}", b));
  for (int b : o.batches)
    if (b < 1) fail(fmt::format("--batches: each batch must be ≥ 1, got {}", b));
  if (o.dtype != "f16" && o.dtype != "bf16")
    fail(fmt::format("--dtype must be f16 or bf16, got '{}'", o.dtype));
  if (o.distance != "l1" && o.distance != "l2")
    fail(fmt::format("--distance must be l1 or l2, got '{}'", o.distance));
  if (o.gqa != "per-head" && o.gqa != "shared" && o.gqa != "both")
    fail(fmt::format("--gqa must be per-head, shared or both, got '{}'", o.gqa));
  if (o.reps < 1) fail(fmt::format("--reps must be ≥ 1, got {}", o.reps));
  if (o.min_reps < 1) fail(fmt::format("--min-reps must be ≥ 1, got {}", o.min_reps));
  if (o.warmup < 0) fail(fmt::format("--warmup must be ≥ 0, got {}", o.warmup));
  if (o.page_size < 1) fail(fmt::format("--page-size must be ≥ 1, got {}", o.page_size));
  if (o.chunk < 1) fail(fmt::format("--chunk must be ≥ 1, got {}", o.chunk));
  if (o.max_replicas < 1) fail(fmt::format("--max-replicas must be ≥ 1, got {}", o.max_replicas));
  if (o.copy_gib <= 0) fail("--copy-gib must be positive");
  for (const auto& h : o.heads) parse_heads(h);
}

class Bench {
 public:
  Bench(const Options& o, cudaStream_t stream)
      : o_(o), stream_(stream), dtype_(adamas::parse_dtype(o.dtype)) {
    int device = 0;
    check(cudaGetDevice(&device), "cudaGetDevice");
    check(cudaDeviceGetAttribute(&l2_bytes_, cudaDevAttrL2CacheSize, device),
          "cudaDeviceGetAttribute(L2)");
    gpu_ = adamas::cuda::device_summary();
    graph_ok_ = o.graph;
    date_ = today();
  }

  void measure_memory() {
    size_t free = 0, total = 0;
    check(cudaMemGetInfo(&free, &total), "cudaMemGetInfo");
    size_t bytes = static_cast<size_t>(o_.copy_gib * kGiB);
    bytes = std::min(bytes, (free - std::min(free, size_t{1} << 30)) / 2);
    fmt::print(stderr, "measuring copy bandwidth ({} copied per repetition)...\n", gib(bytes));
    bw_ = measure_bandwidth(bytes, stream_);
    copy_bytes_ = bytes;
  }

  void open_outputs() {
    csv_.open(o_.csv);
    if (!csv_) throw Error(fmt::format("cannot write CSV file '{}'", o_.csv));
    csv_ << "date,gpu,heads_q,heads_kv,batch,context,budget,dtype,encode_ms,estimate_ms,topk_ms,"
            "attention_ms,sparse_ms,dense_ms,speedup_vs_dense,estimate_gbps,estimate_pct_copy,"
            "dense_gbps,dense_pct_copy,copy_gbps,gqa,read_gbps,replicas,reps,sparse_graph_ms,"
            "dense_graph_ms\n";
    csv_.flush();
  }

  void print_header() const {
    fmt::print(
        "adamas_cuda_bench: decode attention, one layer, head_dim {}, {} KV, page {}, "
        "{}-bit {} codes\n",
        o_.head_dim, o_.dtype, o_.page_size, o_.bits, o_.distance);
    fmt::print("GPU: {}\n", gpu_);
    fmt::print(
        "memory: device-to-device copy {:.0f} GB/s (read + write, {} copied), read-only "
        "pass {:.0f} GB/s\n",
        bw_.copy_gbps, gib(copy_bytes_), bw_.read_gbps);
    fmt::print(
        "each point: median of up to {} event-timed steps (at least {}, fewer once {} ms "
        "were measured) after {} warm-up steps, rotating over replicas of the batch so "
        "that one rotation reads ≥ {}× the L2 ({} MiB) in key codes. Stages: events between "
        "the launches of eager steps; graph: the whole step replayed as a CUDA graph{}\n\n",
        o_.reps, o_.min_reps, o_.point_ms, o_.warmup, o_.rotate_l2, l2_bytes_ >> 20,
        o_.graph ? "" : " (off)");
    fmt::print(
        "{:>6} {:>5} {:>7} {:>6} {:>8} | {:>8} {:>8} | {:>7} {:>8} {:>7} {:>7} | {:>7} | "
        "{:>8} {:>8} | {:>7} {:>5} | {:>7} {:>5}\n",
        "heads", "batch", "context", "budget", "gqa", "dense ms", "sparse", "encode", "estimate",
        "top-k", "attn", "speedup", "graph:dn", "sparse", "est GB/s", "%copy", "dns GB/s", "%copy");
  }

  void run_all() {
    std::vector<Heads> heads;
    for (const auto& h : o_.heads) heads.push_back(parse_heads(h));
    const int total = static_cast<int>(heads.size() * o_.batches.size() * o_.contexts.size());
    int index = 0;
    for (const Heads& h : heads)
      for (int batch : o_.batches)
        for (int ctx : o_.contexts) {
          ++index;
          const auto t0 = std::chrono::steady_clock::now();
          fmt::print(stderr, "[{}/{}] heads {} batch {} context {}\n", index, total, h.name(),
                     batch, ctx);
          try {
            run_config(h, batch, ctx);
          } catch (const Error& e) {
            // One configuration failing (out of memory, an unsupported shape) must not lose the
            // rest of the grid.
            const std::string note = fmt::format("heads {} batch {} context {}: error: {}",
                                                 h.name(), batch, ctx, e.what());
            fmt::print(stderr, "  {}\n", note);
            notes_.push_back(note);
            (void)cudaGetLastError();  // clear a sticky launch error if it is not fatal
          }
          const double s =
              std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
          fmt::print(stderr, "  done in {:.1f} s\n", s);
          write_json();
        }
  }

  void print_summary() const {
    fmt::print(
        "\nestimate GB/s: key-code bytes read + distance bytes written over the estimate "
        "time; dense GB/s: K and V bytes read over the dense time; %copy: of the copy "
        "bandwidth above ({:.0f} GB/s). speedup: dense / sparse total (eager). graph: "
        "ms of the step replayed as a CUDA graph (dense, sparse).\n",
        bw_.copy_gbps);
    fmt::print("\nbatch 1, budget 256:\n");
    for (const Row& r : rows_) {
      if (r.batch != 1 || r.budget != 256) continue;
      fmt::print(
          "  heads {:>5} {:>8} {:>5}: sparse {:.3f} ms, dense {:.3f} ms ({:.1f}x); graphs "
          "{:.3f} / {:.3f} ms ({:.1f}x); estimate {:.0f} GB/s = {:.0f}% of copy, dense "
          "{:.0f} GB/s = {:.0f}% of copy\n",
          r.heads.name(), r.gqa, context_name(r.context), r.sparse, r.dense, r.speedup,
          r.sparse_graph, r.dense_graph, r.sparse_graph > 0 ? r.dense_graph / r.sparse_graph : 0.0,
          r.est_gbps, r.est_pct, r.dense_gbps, r.dense_pct);
    }
    for (const auto& n : notes_) fmt::print("note: {}\n", n);
    fmt::print("wrote {}{}\n", o_.csv, o_.json.empty() ? "" : " and " + o_.json);
  }

 private:
  struct Replica {
    DeviceBuffer<int32_t> tables;  // CSR: page_indptr, page_indices, lengths
    DeviceBuffer<float> q;
    adamas::cuda::DeviceBatch batch;
  };

  template <class Step>  // Step(replica) -> {encode, estimate, top-k, attention, total} ms
  std::vector<std::array<float, 5>> sample(Step&& step, int replicas) {
    for (int i = 0; i < o_.warmup; ++i) step(next_replica(replicas));
    std::vector<std::array<float, 5>> out;
    double spent = 0;
    while (static_cast<int>(out.size()) < o_.reps &&
           !(static_cast<int>(out.size()) >= o_.min_reps && spent >= o_.point_ms)) {
      out.push_back(step(next_replica(replicas)));
      spent += out.back()[4];
    }
    return out;
  }
  int next_replica(int replicas) { return step_counter_++ % replicas; }

  // Captures what launch() enqueues on the stream into an executable graph.
  template <class Launch>
  cudaGraphExec_t capture(Launch&& launch) {
    check(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal),
          "cudaStreamBeginCapture");
    cudaGraph_t graph = nullptr;
    try {
      launch();
    } catch (...) {
      cudaStreamEndCapture(stream_, &graph);
      if (graph != nullptr) cudaGraphDestroy(graph);
      (void)cudaGetLastError();
      throw;
    }
    check(cudaStreamEndCapture(stream_, &graph), "cudaStreamEndCapture");
    cudaGraphExec_t exec = nullptr;
    const cudaError_t status = cudaGraphInstantiate(&exec, graph, 0);
    cudaGraphDestroy(graph);
    check(status, "cudaGraphInstantiate");
    return exec;
  }

  // Median ms of one step replayed as a CUDA graph (one graph per replica, captured after the
  // eager runs sized every buffer): the device time without the host's launch gaps. 0 when
  // graphs are off or capture fails (then they stay off for the rest of the run, with a note).
  template <class Launch>  // Launch(replica) enqueues one step
  float graph_ms(Launch&& launch, int replicas, Event& start, Event& stop) {
    if (!graph_ok_) return 0;
    struct Graphs {
      std::vector<cudaGraphExec_t> v;
      ~Graphs() {
        for (cudaGraphExec_t e : v) cudaGraphExecDestroy(e);
      }
    } graphs;
    try {
      for (int r = 0; r < replicas; ++r) graphs.v.push_back(capture([&] { launch(r); }));
      auto step = [&](int r) {
        start.record(stream_);
        check(cudaGraphLaunch(graphs.v[r], stream_), "cudaGraphLaunch");
        stop.record(stream_);
        return std::array<float, 5>{0, 0, 0, 0, stop.since(start)};
      };
      return median_of(sample(step, replicas), 4);
    } catch (const Error& e) {
      graph_ok_ = false;
      const std::string note = fmt::format("CUDA graph timing turned off: {}", e.what());
      fmt::print(stderr, "  {}\n", note);
      notes_.push_back(note);
      return 0;
    }
  }

  static float median_of(const std::vector<std::array<float, 5>>& v, int i) {
    std::vector<float> x;
    for (const auto& a : v) x.push_back(a[i]);
    return median(x);
  }

  void check_finite(const DeviceBuffer<float>& out, size_t n, const std::string& what) {
    const std::vector<float> host = out.download(n, stream_);
    size_t bad = 0;
    for (float x : host) bad += !std::isfinite(x);
    if (bad) {
      const std::string note = fmt::format("{}: {} of {} outputs are not finite", what, bad, n);
      fmt::print(stderr, "  WARNING: {}\n", note);
      notes_.push_back(note);
    }
  }

  void run_config(const Heads& h, int batch, int ctx) {
    const size_t esize = adamas::dtype_size(dtype_);
    adamas::CacheConfig cc;
    cc.num_layers = 1;
    cc.num_kv_heads = h.kv;
    cc.head_dim = o_.head_dim;
    cc.page_size = o_.page_size;
    cc.dtype = dtype_;
    cc.store_codes = true;
    cc.store_page_minmax = false;
    cc.codes.head_dim = o_.head_dim;
    cc.codes.bits = o_.bits;

    // Memory of one replica (the batch's K/V and codes) and of what every replica shares.
    const int64_t pages = cc.pages_for(ctx);
    const double kv_seq = double(pages) * o_.page_size * h.kv * o_.head_dim * esize * 2;
    const double code_seq =
        double(pages) * h.kv * adamas::code_page_words(cc.codes, o_.page_size) * 8;
    const double q_batch = double(batch) * h.q * o_.head_dim * 4;
    const double per_replica = batch * (kv_seq + code_seq) + q_batch;
    const int rows = batch * h.q;
    const int max_budget = std::min(ctx, *std::max_element(o_.budgets.begin(), o_.budgets.end()));
    const double workspace =
        double(rows) * ctx * 2                                        // distances
        + double(adamas::cuda::select_scratch_words(rows, ctx)) * 4   // top-k scratch
        + double(rows) * (max_budget + 1) * 4                         // indices
        + 2.0 * std::min(o_.chunk, ctx) * h.kv * o_.head_dim * esize  // fill chunks
        + 256.0 * (1 << 20);  // attention partials, histograms, slack
    size_t free = 0, total = 0;
    check(cudaMemGetInfo(&free, &total), "cudaMemGetInfo");
    const double headroom = 1.0 * kGiB + 0.02 * double(total);
    const double avail = std::min(double(free) - headroom - workspace, o_.mem_cap_gb * 1e9);
    const int fit = avail > 0 ? static_cast<int>(std::min(avail / per_replica, 1e6)) : 0;
    if (fit < 1) {
      const std::string note = fmt::format(
          "heads {} batch {} context {}: skipped, needs {} for K/V and codes + {} of workspace, "
          "{} free (cap {:.0f} GB)",
          h.name(), batch, ctx, gib(per_replica), gib(workspace), gib(double(free)), o_.mem_cap_gb);
      fmt::print(stderr, "  {}\n", note);
      notes_.push_back(note);
      return;
    }
    const double codes_batch = batch * code_seq;
    const int wanted =
        std::max(1, static_cast<int>(std::ceil(o_.rotate_l2 * l2_bytes_ / codes_batch)));
    const int replicas = std::min({wanted, fit, o_.max_replicas});
    if (replicas < wanted) {
      const std::string note = fmt::format(
          "heads {} batch {} context {}: {} replicas instead of {} (memory or --max-replicas): "
          "a rotation reads {:.1f}x the L2 in codes",
          h.name(), batch, ctx, replicas, wanted, replicas * codes_batch / l2_bytes_);
      fmt::print(stderr, "  {}\n", note);
      notes_.push_back(note);
    }
    const int64_t num_pages = int64_t{replicas} * batch * pages;
    if (num_pages > INT_MAX) throw Error("too many pages for one cache");
    cc.num_pages = static_cast<int>(num_pages);

    // ---- fill -------------------------------------------------------------------------------
    const auto fill_start = std::chrono::steady_clock::now();
    fmt::print(stderr, "  filling {} replica(s) x {} sequence(s) of {} tokens: {} of K/V + codes\n",
               replicas, batch, ctx, gib(replicas * batch * (kv_seq + code_seq)));
    adamas::cuda::DeviceKVCache cache(cc);
    const int chunk = std::min(o_.chunk, ctx);
    const size_t chunk_elems = size_t(chunk) * h.kv * o_.head_dim;
    DeviceBuffer<std::byte> kbuf(chunk_elems * esize), vbuf(chunk_elems * esize);
    const uint64_t config_seed =
        seed_of({uint64_t(h.q), uint64_t(h.kv), uint64_t(batch), uint64_t(ctx)});
    std::vector<Replica> reps;
    reps.reserve(replicas);
    int64_t filled = 0;
    const int64_t fill_total = int64_t{replicas} * batch * ctx;
    int last_percent = -1;
    for (int r = 0; r < replicas; ++r) {
      std::vector<adamas::SeqId> seqs;
      for (int b = 0; b < batch; ++b) {
        const adamas::SeqId seq = cache.add_sequence();
        seqs.push_back(seq);
        for (int t = 0; t < ctx; t += chunk) {
          const int n = std::min(chunk, ctx - t);
          const size_t elems = size_t(n) * h.kv * o_.head_dim;
          const uint64_t s = seed_of({config_seed, uint64_t(r), uint64_t(b), uint64_t(t)});
          adamas::bench::fill_normal(kbuf.data(), dtype_, elems, o_.key_std, s, stream_);
          adamas::bench::fill_normal(vbuf.data(), dtype_, elems, o_.value_std, s ^ 0xabcdef,
                                     stream_);
          cache.append(0, seq, kbuf.data(), vbuf.data(), dtype_, n, stream_);
          filled += n;
          const int percent = static_cast<int>(100 * filled / fill_total);
          if (percent / 25 != last_percent / 25 && percent < 100) {
            fmt::print(stderr, "    {}%\n", percent);
            last_percent = percent;
          }
        }
        if (cache.length(0, seq) != ctx)
          throw Error(fmt::format("sequence holds {} tokens after the fill, expected {}",
                                  cache.length(0, seq), ctx));
      }
      Replica rep;
      // The batch's CSR page tables, in this replica's own device buffer (cache.batch() reuses
      // one staging buffer for every call).
      const adamas::BatchTables bt = cache.page_tables().batch(seqs, 0);
      if (bt.max_length != ctx) throw Error("batch tables do not hold the context");
      std::vector<int32_t> flat(bt.page_indptr);
      flat.insert(flat.end(), bt.page_indices.begin(), bt.page_indices.end());
      flat.insert(flat.end(), bt.lengths.begin(), bt.lengths.end());
      rep.tables.upload(flat, stream_);
      rep.q.resize(size_t(batch) * h.q * o_.head_dim);
      adamas::bench::fill_normal(rep.q.data(), adamas::DType::kF32, rep.q.size(), o_.query_std,
                                 seed_of({config_seed, uint64_t(r), 0x9999}), stream_);
      rep.batch.page_indptr = rep.tables.data();
      rep.batch.page_indices = rep.batch.page_indptr + bt.page_indptr.size();
      rep.batch.lengths = rep.batch.page_indices + bt.page_indices.size();
      rep.batch.batch = batch;
      rep.batch.max_length = bt.max_length;
      reps.push_back(std::move(rep));
    }
    check(cudaStreamSynchronize(stream_), "fill");
    const double fill_s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - fill_start).count();
    fmt::print(stderr, "  filled in {:.1f} s (cache {})\n", fill_s, gib(double(cache.bytes())));

    // ---- time ---------------------------------------------------------------------------------
    const adamas::cuda::DeviceLayer layer = cache.layer(0);
    adamas::cuda::SparseDecoder decoder(h.q);
    DeviceBuffer<float> out(size_t(batch) * h.q * o_.head_dim);
    const float scale = 1.f / std::sqrt(float(o_.head_dim));
    Event start, stop;
    step_counter_ = 0;
    auto policy_for = [&](int budget, bool shared) {
      adamas::PolicyConfig p;
      p.kind = adamas::PolicyKind::kAdamas;
      p.budget = budget;
      p.dense_layers = 0;
      p.bits = o_.bits;
      p.hadamard = layer.hadamard;
      p.distance = o_.distance == "l2" ? adamas::Distance::kL2 : adamas::Distance::kL1;
      p.gqa = shared ? adamas::GqaMode::kGroupShared : adamas::GqaMode::kPerQueryHead;
      return p;
    };
    // Every workspace sized before the first timed step (and before any graph capture).
    decoder.plan(layer, batch, ctx, policy_for(max_budget, false));

    fmt::print(stderr, "  dense\n");
    auto dense_step = [&](int r) {
      start.record(stream_);
      decoder.run_dense(layer, reps[r].batch, reps[r].q.data(), scale, out.data(), stream_);
      stop.record(stream_);
      const float ms = stop.since(start);
      return std::array<float, 5>{0, 0, 0, 0, ms};
    };
    const auto dense_samples = sample(dense_step, replicas);
    const float dense_ms = median_of(dense_samples, 4);
    check_finite(out, out.size(),
                 fmt::format("dense, heads {} batch {} context {}", h.name(), batch, ctx));
    const float dense_graph_ms = graph_ms(
        [&](int r) {
          decoder.run_dense(layer, reps[r].batch, reps[r].q.data(), scale, out.data(), stream_);
        },
        replicas, start, stop);
    const double kv_bytes = double(batch) * h.kv * ctx * o_.head_dim * esize * 2;
    const double dense_gbps = kv_bytes / (dense_ms * 1e-3) / 1e9;

    if (std::none_of(o_.budgets.begin(), o_.budgets.end(), [&](int b) { return b < ctx; })) {
      const std::string note = fmt::format(
          "heads {} batch {} context {}: every budget ≥ the context, no sparse row (dense {:.3f} "
          "ms)",
          h.name(), batch, ctx, dense_ms);
      fmt::print(stderr, "  {}\n", note);
      notes_.push_back(note);
    }
    std::vector<bool> modes;  // group-shared selection (GqaMode::kGroupShared) or per head
    if (o_.gqa != "shared" || h.q == h.kv) modes.push_back(false);
    if (o_.gqa != "per-head" && h.q != h.kv) modes.push_back(true);
    adamas::cuda::StageTimer timer;
    for (bool shared : modes) {
      for (int budget : o_.budgets) {
        if (budget >= ctx) continue;
        fmt::print(stderr, "  budget {}{}\n", budget, shared ? " (shared GQA selection)" : "");
        const adamas::PolicyConfig pc = policy_for(budget, shared);
        decoder.plan(layer, batch, ctx, pc);
        auto sparse_step = [&](int r) {
          decoder.run(layer, reps[r].batch, reps[r].q.data(), pc, scale, out.data(), stream_,
                      &timer);
          const auto st = timer.stage_ms();
          return std::array<float, 5>{st[0], st[1], st[2], st[3], timer.total_ms()};
        };
        const auto s = sample(sparse_step, replicas);
        const float sparse_graph_ms = graph_ms(
            [&](int r) {
              decoder.run(layer, reps[r].batch, reps[r].q.data(), pc, scale, out.data(), stream_);
            },
            replicas, start, stop);
        Row row;
        row.heads = h;
        row.batch = batch;
        row.context = ctx;
        row.budget = budget;
        row.gqa = shared ? "shared" : "per-head";
        row.encode = median_of(s, 0);
        row.estimate = median_of(s, 1);
        row.topk = median_of(s, 2);
        row.attention = median_of(s, 3);
        row.sparse = median_of(s, 4);
        row.dense = dense_ms;
        row.sparse_graph = sparse_graph_ms;
        row.dense_graph = dense_graph_ms;
        row.speedup = row.sparse > 0 ? dense_ms / row.sparse : 0;
        const int est_rows = batch * (shared ? h.kv : h.q);
        const double est_bytes =
            double(batch) * h.kv * (ctx - 1) * (size_t(o_.bits) * layer.words() * 8) +
            double(est_rows) * (ctx - 1) * 2;
        row.est_gbps = row.estimate > 0 ? est_bytes / (row.estimate * 1e-3) / 1e9 : 0;
        row.est_pct = 100 * row.est_gbps / bw_.copy_gbps;
        row.dense_gbps = dense_gbps;
        row.dense_pct = 100 * dense_gbps / bw_.copy_gbps;
        row.replicas = replicas;
        row.reps = static_cast<int>(s.size());
        emit(row);
      }
      check_finite(out, out.size(),
                   fmt::format("sparse, heads {} batch {} context {}", h.name(), batch, ctx));
    }
    check(cudaStreamSynchronize(stream_), "timing");
  }

  void emit(const Row& r) {
    rows_.push_back(r);
    fmt::print(
        "{:>6} {:>5} {:>7} {:>6} {:>8} | {:>8.3f} {:>8.3f} | {:>7.3f} {:>8.3f} {:>7.3f} "
        "{:>7.3f} | {:>6.1f}x | {:>8.3f} {:>8.3f} | {:>7.0f} {:>4.0f}% | {:>7.0f} {:>4.0f}%\n",
        r.heads.name(), r.batch, context_name(r.context), r.budget, r.gqa, r.dense, r.sparse,
        r.encode, r.estimate, r.topk, r.attention, r.speedup, r.dense_graph, r.sparse_graph,
        r.est_gbps, r.est_pct, r.dense_gbps, r.dense_pct);
    std::fflush(stdout);
    csv_ << fmt::format(
        "{},{},{},{},{},{},{},{},{:.5f},{:.5f},{:.5f},{:.5f},{:.5f},{:.5f},{:.3f},"
        "{:.1f},{:.1f},{:.1f},{:.1f},{:.1f},{},{:.1f},{},{},{:.5f},{:.5f}\n",
        date_, csv_quote(gpu_), r.heads.q, r.heads.kv, r.batch, r.context, r.budget, o_.dtype,
        r.encode, r.estimate, r.topk, r.attention, r.sparse, r.dense, r.speedup, r.est_gbps,
        r.est_pct, r.dense_gbps, r.dense_pct, bw_.copy_gbps, r.gqa, bw_.read_gbps, r.replicas,
        r.reps, r.sparse_graph, r.dense_graph);
    csv_.flush();
  }

  // Rewritten after every configuration, so that a run cut short leaves valid JSON.
  void write_json() const {
    if (o_.json.empty()) return;
    std::ofstream f(o_.json);
    if (!f) throw Error(fmt::format("cannot write JSON file '{}'", o_.json));
    f << fmt::format(
        "{{\n  \"date\": \"{}\",\n  \"gpu\": \"{}\",\n  \"dtype\": \"{}\",\n"
        "  \"head_dim\": {},\n  \"page_size\": {},\n  \"bits\": {},\n"
        "  \"distance\": \"{}\",\n  \"copy_gbps\": {:.1f},\n  \"read_gbps\": {:.1f},\n"
        "  \"l2_bytes\": {},\n  \"notes\": [",
        date_, json_escape(gpu_), o_.dtype, o_.head_dim, o_.page_size, o_.bits, o_.distance,
        bw_.copy_gbps, bw_.read_gbps, l2_bytes_);
    for (size_t i = 0; i < notes_.size(); ++i)
      f << (i ? ", " : "") << '"' << json_escape(notes_[i]) << '"';
    f << "],\n  \"rows\": [\n";
    for (size_t i = 0; i < rows_.size(); ++i) {
      const Row& r = rows_[i];
      f << fmt::format(
          "    {{\"heads_q\": {}, \"heads_kv\": {}, \"batch\": {}, \"context\": {}, "
          "\"budget\": {}, \"gqa\": \"{}\", \"encode_ms\": {:.5f}, "
          "\"estimate_ms\": {:.5f}, \"topk_ms\": {:.5f}, \"attention_ms\": {:.5f}, "
          "\"sparse_ms\": {:.5f}, \"dense_ms\": {:.5f}, \"speedup_vs_dense\": {:.3f}, "
          "\"estimate_gbps\": {:.1f}, \"estimate_pct_copy\": {:.1f}, "
          "\"dense_gbps\": {:.1f}, \"dense_pct_copy\": {:.1f}, \"replicas\": {}, "
          "\"reps\": {}, \"sparse_graph_ms\": {:.5f}, \"dense_graph_ms\": {:.5f}}}{}\n",
          r.heads.q, r.heads.kv, r.batch, r.context, r.budget, r.gqa, r.encode, r.estimate, r.topk,
          r.attention, r.sparse, r.dense, r.speedup, r.est_gbps, r.est_pct, r.dense_gbps,
          r.dense_pct, r.replicas, r.reps, r.sparse_graph, r.dense_graph,
          i + 1 < rows_.size() ? "," : "");
    }
    f << "  ]\n}\n";
  }

  const Options& o_;
  cudaStream_t stream_;
  adamas::DType dtype_;
  int l2_bytes_ = 0;
  std::string gpu_, date_;
  Bandwidth bw_;
  size_t copy_bytes_ = 0;
  std::ofstream csv_;
  std::vector<Row> rows_;
  std::vector<std::string> notes_;
  int step_counter_ = 0;
  bool graph_ok_ = true;
};

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{
      "adamas_cuda_bench: one layer's GPU decode attention (Adamas stages, dense "
      "flash-decoding) against a device-to-device copy"};
  app.option_defaults()->always_capture_default();
  auto* heads =
      app.add_option("--heads", o.heads, "head configs q/kv, e.g. 32/32,32/8")->delimiter(',');
  auto* contexts =
      app.add_option("--contexts", o.contexts, "context lengths (tokens)")->delimiter(',');
  auto* budgets = app.add_option("--budgets", o.budgets, "token budgets")->delimiter(',');
  auto* batches = app.add_option("--batches", o.batches, "batch sizes")->delimiter(',');
  app.add_option("--dtype", o.dtype, "KV dtype: f16 or bf16");
  app.add_option("--head-dim", o.head_dim, "head dimension");
  app.add_option("--page-size", o.page_size, "KV cache page size (tokens)");
  app.add_option("--bits", o.bits, "key code bits (1..3; thresholds: the paper's defaults)");
  app.add_option("--distance", o.distance, "code distance: l1 or l2");
  app.add_option("--gqa", o.gqa,
                 "GQA selection: per-head, shared (one per KV head, summed distances) or both");
  auto* reps = app.add_option("--reps", o.reps, "timed steps per point (median reported)");
  app.add_option("--min-reps", o.min_reps, "timed steps per point at least");
  app.add_option("--point-ms", o.point_ms,
                 "stop repeating a point (after --min-reps) once this much device time was timed");
  app.add_option("--warmup", o.warmup, "untimed steps before each point");
  app.add_flag("!--no-graph", o.graph,
               "skip the CUDA-graph replay timings (sparse_graph_ms, dense_graph_ms)");
  app.add_option("--chunk", o.chunk, "prefill tokens per append call");
  app.add_option("--key-std", o.key_std, "standard deviation of the random keys");
  app.add_option("--value-std", o.value_std, "standard deviation of the random values");
  app.add_option("--query-std", o.query_std, "standard deviation of the random queries");
  app.add_option("--rotate-l2", o.rotate_l2,
                 "replicas of the batch: one rotation reads at least this many L2s of key codes");
  app.add_option("--max-replicas", o.max_replicas, "replicas of the batch at most");
  app.add_option("--mem-cap-gb", o.mem_cap_gb, "K/V + codes of all replicas at most (GB)");
  app.add_option("--copy-gib", o.copy_gib, "bytes per copy of the bandwidth measurement (GiB)");
  app.add_option("--csv", o.csv, "CSV output file");
  app.add_option("--json", o.json, "JSON output file (optional)");
  app.add_flag("--quick", o.quick,
               "a subset: contexts 32K,128K, budgets 64,256,1024, batches 1,8, 20 reps "
               "(explicit options win)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (o.quick) {
    if (contexts->count() == 0) o.contexts = {32768, 131072};
    if (budgets->count() == 0) o.budgets = {64, 256, 1024};
    if (batches->count() == 0) o.batches = {1, 8};
    if (reps->count() == 0) o.reps = 20;
    (void)heads;
  }
  try {
    validate(o);
    if (!adamas::cuda::available()) {
      fmt::print(stderr, "adamas_cuda_bench: no usable CUDA device: {}\n",
                 adamas::cuda::device_summary());
      return 2;
    }
    const auto t0 = std::chrono::steady_clock::now();
    Stream stream;
    Bench bench(o, stream);
    bench.measure_memory();
    bench.open_outputs();
    bench.print_header();
    bench.run_all();
    bench.print_summary();
    fmt::print(stderr, "adamas_cuda_bench: {:.1f} s in all\n",
               std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  } catch (const Error& e) {
    fmt::print(stderr, "adamas_cuda_bench: error: {}\n", e.what());
    return 1;
  }
  return 0;
}
