// Public entry points of the GPU kernels: argument checks with messages that name the problem,
// then the launch (launch.h) and a check of the launch.
#include "adamas/cuda/kernels.h"

#include <algorithm>
#include <cmath>

#include "common/check.h"
#include "cuda/launch.h"

namespace adamas::cuda {
namespace {

float hadamard_scale(int d) { return 1.0f / std::sqrt(static_cast<float>(d)); }

void check_heads(const DeviceLayer& layer, int num_q_heads) {
  ADAMAS_CHECK(num_q_heads >= 1 && num_q_heads % layer.num_kv_heads == 0,
               "num_q_heads ({}) must be a positive multiple of num_kv_heads ({})", num_q_heads,
               layer.num_kv_heads);
}

// The CSR tables live in device memory: only the host-side fields are checked here (the tables
// themselves are built and checked by PageTables::batch / DeviceKVCache::upload).
void check_batch(const DeviceBatch& batch) {
  batch.validate();
  ADAMAS_CHECK(batch.batch <= 65535, "batch must be in [1, 65535] (a grid dimension), got {}",
               batch.batch);
}

}  // namespace

void append_kv(const DeviceLayer& layer, const int32_t* slots, int n, const void* k, const void* v,
               DType src, cudaStream_t stream) {
  layer.validate();
  ADAMAS_CHECK(n >= 0, "append: token count must be ≥ 0, got {}", n);
  if (n == 0) return;
  ADAMAS_CHECK(slots != nullptr && k != nullptr && v != nullptr, "append: null slots, k or v");
  detail::launch_append(layer, slots, n, k, v, src, hadamard_scale(layer.head_dim), stream);
  check_launch("append_kv");
}

void encode_stored_keys(const DeviceLayer& layer, const int32_t* slots, int n,
                        cudaStream_t stream) {
  layer.validate();
  ADAMAS_CHECK(n >= 0, "encode: token count must be ≥ 0, got {}", n);
  if (n == 0) return;
  ADAMAS_CHECK(slots != nullptr, "encode: null slots");
  detail::launch_append(layer, slots, n, nullptr, nullptr, layer.dtype,
                        hadamard_scale(layer.head_dim), stream);
  check_launch("encode_stored_keys");
}

void encode_queries(const DeviceLayer& layer, const float* q, int rows, int num_q_heads,
                    QueryCode* out, cudaStream_t stream) {
  layer.validate();
  check_heads(layer, num_q_heads);
  ADAMAS_CHECK(rows >= 0, "encode_queries: rows must be ≥ 0, got {}", rows);
  if (rows == 0) return;
  ADAMAS_CHECK(q != nullptr && out != nullptr, "encode_queries: null q or out");
  detail::launch_encode_queries(layer, q, rows, num_q_heads, hadamard_scale(layer.head_dim), out,
                                stream);
  check_launch("encode_queries");
}

void estimate_distances(const DeviceLayer& layer, const DeviceBatch& batch,
                        const EstimateArgs& args, cudaStream_t stream) {
  layer.validate();
  check_batch(batch);
  check_heads(layer, args.num_q_heads);
  ADAMAS_CHECK(args.q != nullptr || args.queries != nullptr,
               "estimate: null queries (set q, the query codes, or queries, the raw queries)");
  ADAMAS_CHECK(args.q == nullptr || args.queries == nullptr,
               "estimate: both q (query codes) and queries (raw) are set; set one");
  ADAMAS_CHECK(args.out != nullptr, "estimate: null output");
  ADAMAS_CHECK(args.out_stride >= static_cast<size_t>(batch.max_length),
               "estimate: out_stride {} is smaller than max_length {}", args.out_stride,
               batch.max_length);
  const int group = args.num_q_heads / layer.num_kv_heads;
  ADAMAS_CHECK(group <= 16, "estimate: at most 16 query heads per KV head, got {}", group);
  ADAMAS_CHECK(args.distance != Distance::kIP,
               "estimate: dist=ip has no GPU kernel yet (the CPU runs it)");
  const CodeSpec spec = layer.code_spec();
  const long worst = long{max_distance(spec, args.distance)} * (args.sum_heads ? group : 1);
  ADAMAS_CHECK(worst <= 65535,
               "distances up to {} do not fit 16 bits ({} bits, {}, head_dim {}, {} heads summed)",
               worst, spec.bits, args.distance == Distance::kL1 ? "L1" : "L2", spec.head_dim,
               args.sum_heads ? group : 1);
  detail::launch_estimate(layer, batch, args,
                          histogram_size(spec, args.distance, group, args.sum_heads), stream);
  check_launch("estimate_distances");
}

size_t select_scratch_words(int rows, int max_length) {
  return detail::select_scratch_words(rows, max_length);
}

namespace {

// The checks select_smallest and the fused step share (all but out and counts).
void check_topk(const TopKArgs& a, const uint32_t* scratch) {
  ADAMAS_CHECK(
      a.values != nullptr && a.histogram != nullptr && a.lengths != nullptr && scratch != nullptr,
      "top-k: null values, histogram, lengths or scratch");
  ADAMAS_CHECK(a.rows_per_seq >= 1 && a.rows % a.rows_per_seq == 0,
               "top-k: rows ({}) must be a multiple of rows_per_seq ({})", a.rows, a.rows_per_seq);
  ADAMAS_CHECK(a.budget >= (a.add_current ? 1 : 0), "top-k: budget must be ≥ {}, got {}",
               a.add_current ? 1 : 0, a.budget);
  ADAMAS_CHECK(a.max_length >= 1 && a.value_stride >= static_cast<size_t>(a.max_length),
               "top-k: value_stride {} is smaller than max_length {}", a.value_stride,
               a.max_length);
  ADAMAS_CHECK(a.histogram_size >= 1, "top-k: histogram_size must be ≥ 1, got {}",
               a.histogram_size);
  ADAMAS_CHECK(a.rows <= 65535, "top-k: at most 65535 rows per launch, got {}", a.rows);
}

}  // namespace

void select_smallest(const TopKArgs& a, uint32_t* scratch, cudaStream_t stream) {
  ADAMAS_CHECK(a.rows >= 0, "top-k: rows must be ≥ 0, got {}", a.rows);
  if (a.rows == 0) return;
  ADAMAS_CHECK(a.out != nullptr && a.counts != nullptr, "top-k: null out or counts");
  check_topk(a, scratch);
  ADAMAS_CHECK(a.out_stride >= static_cast<size_t>(std::min(a.budget, a.max_length)),
               "top-k: out_stride {} is smaller than min(budget {}, max_length {})", a.out_stride,
               a.budget, a.max_length);
  detail::launch_select(a, scratch, stream);
  check_launch("select_smallest");
}

void select_count(const TopKArgs& a, uint32_t* scratch, cudaStream_t stream) {
  ADAMAS_CHECK(a.rows >= 0, "top-k: rows must be ≥ 0, got {}", a.rows);
  if (a.rows == 0) return;
  check_topk(a, scratch);
  detail::launch_select_count(a, scratch, stream);
  check_launch("select_count");
}

void select_sparse_decode_attention(const DeviceLayer& layer, const DeviceBatch& batch,
                                    const float* q, int num_q_heads, const TopKArgs& topk,
                                    bool shared_rows, float scale, float* out, uint32_t* scratch,
                                    AttentionWorkspace& ws, cudaStream_t stream) {
  layer.validate(/*with_codes=*/false);
  check_batch(batch);
  check_heads(layer, num_q_heads);
  ADAMAS_CHECK(q != nullptr && out != nullptr, "attention: null q or out");
  ADAMAS_CHECK(topk.add_current, "fused top-k + attention: the policies' add_current is required");
  ADAMAS_CHECK(batch.max_length <= detail::kMaxFusedSplits * detail::kSelectChunk,
               "fused top-k + attention: max_length {} exceeds {} (use select_smallest and "
               "sparse_decode_attention)",
               batch.max_length, detail::kMaxFusedSplits * detail::kSelectChunk);
  const int rows = batch.batch * (shared_rows ? layer.num_kv_heads : num_q_heads);
  ADAMAS_CHECK(topk.rows == rows && topk.rows_per_seq == rows / batch.batch,
               "fused top-k + attention: {} rows of {} per sequence expected, got {} of {}", rows,
               rows / batch.batch, topk.rows, topk.rows_per_seq);
  ADAMAS_CHECK(topk.lengths == batch.lengths && topk.max_length == batch.max_length,
               "fused top-k + attention: the top-k lengths must be the batch's");
  check_topk(topk, scratch);
  detail::FusedSelect f;
  f.values = topk.values;
  f.value_stride = topk.value_stride;
  f.scratch = scratch;
  f.histogram = topk.histogram;
  f.histogram_size = topk.histogram_size;
  f.budget = topk.budget;
  f.max_length = topk.max_length;
  detail::launch_select_attention(layer, batch, q, num_q_heads, shared_rows, f, scale, out, ws,
                                  stream);
  check_launch("select_sparse_decode_attention");
}

void dense_decode_attention(const DeviceLayer& layer, const DeviceBatch& batch, const float* q,
                            int num_q_heads, float scale, float* out, AttentionWorkspace& ws,
                            cudaStream_t stream) {
  layer.validate(/*with_codes=*/false);
  check_batch(batch);
  check_heads(layer, num_q_heads);
  ADAMAS_CHECK(q != nullptr && out != nullptr, "attention: null q or out");
  detail::launch_attention(layer, batch, q, num_q_heads, nullptr, scale, out, ws, stream);
  check_launch("dense_decode_attention");
}

void sparse_decode_attention(const DeviceLayer& layer, const DeviceBatch& batch, const float* q,
                             int num_q_heads, const SparseArgs& args, float scale, float* out,
                             AttentionWorkspace& ws, cudaStream_t stream) {
  layer.validate(/*with_codes=*/false);
  check_batch(batch);
  check_heads(layer, num_q_heads);
  ADAMAS_CHECK(q != nullptr && out != nullptr, "attention: null q or out");
  ADAMAS_CHECK(args.indices != nullptr && args.counts != nullptr,
               "attention: null indices or counts");
  ADAMAS_CHECK(args.max_count >= 1 && args.index_stride >= static_cast<size_t>(args.max_count),
               "attention: index_stride {} is smaller than max_count {}", args.index_stride,
               args.max_count);
  detail::launch_attention(layer, batch, q, num_q_heads, &args, scale, out, ws, stream);
  check_launch("sparse_decode_attention");
}

}  // namespace adamas::cuda
