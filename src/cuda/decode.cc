#include "adamas/cuda/decode.h"

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "common/check.h"
#include "cuda/launch.h"

namespace adamas::cuda {

StageTimer::StageTimer() {
  for (auto& e : events_) check(cudaEventCreate(&e), "cudaEventCreate");
}
StageTimer::~StageTimer() {
  for (auto& e : events_) cudaEventDestroy(e);
}
void StageTimer::record(int boundary, cudaStream_t stream) {
  check(cudaEventRecord(events_.at(boundary), stream), "cudaEventRecord");
}
std::array<float, StageTimer::kStages> StageTimer::stage_ms() const {
  check(cudaEventSynchronize(events_[kStages]), "cudaEventSynchronize");
  std::array<float, kStages> ms{};
  for (int s = 0; s < kStages; ++s) {
    check(cudaEventElapsedTime(&ms[s], events_[s], events_[s + 1]), "cudaEventElapsedTime");
  }
  return ms;
}
float StageTimer::total_ms() const {
  check(cudaEventSynchronize(events_[kStages]), "cudaEventSynchronize");
  float ms = 0;
  check(cudaEventElapsedTime(&ms, events_[0], events_[kStages]), "cudaEventElapsedTime");
  return ms;
}

namespace {

void check_heads(const DeviceLayer& layer, int num_q_heads) {
  ADAMAS_CHECK(num_q_heads >= 1 && num_q_heads % layer.num_kv_heads == 0,
               "num_q_heads ({}) must be a positive multiple of num_kv_heads ({})", num_q_heads,
               layer.num_kv_heads);
}

// What run() reads of the policy, against the layer it runs on. Messages are formatted only on
// failure (no allocation on the step's path).
void check_policy(const DeviceLayer& layer, const PolicyConfig& policy) {
  ADAMAS_CHECK(policy.kind == PolicyKind::kAdamas,
               "the GPU sparse decoder runs the adamas policy, got {} (run_dense attends to "
               "every position)",
               policy.describe());
  ADAMAS_CHECK(policy.budget >= 1, "budget must be ≥ 1, got {} (policy {})", policy.budget,
               policy.describe());
  ADAMAS_CHECK(policy.bits == layer.bits,
               "policy {} reads {}-bit key codes but the cache stores {}-bit codes (configure the "
               "cache with configure_cache_for)",
               policy.describe(), policy.bits, layer.bits);
  ADAMAS_CHECK(policy.hadamard == layer.hadamard,
               "policy {} {} the Hadamard transform but the cache's codes were encoded {} it",
               policy.describe(), policy.hadamard ? "uses" : "does not use",
               layer.hadamard ? "with" : "without");
}

size_t distance_stride(int max_length) { return (static_cast<size_t>(max_length) + 7) / 8 * 8; }

// Elements of each workspace a plan needs.
struct WorkspaceSizes {
  size_t distances = 0, histogram = 0, scratch = 0, indices = 0, counts = 0;
  size_t partials = 0, counters = 0;
};

WorkspaceSizes workspace_sizes(const DeviceLayer& layer, int num_q_heads, int max_batch,
                               int max_length, const PolicyConfig& policy) {
  const bool sparse = policy.kind == PolicyKind::kAdamas;
  layer.validate(/*with_codes=*/false);  // sizes only: the estimate checks the codes
  check_heads(layer, num_q_heads);
  if (sparse) check_policy(layer, policy);
  ADAMAS_CHECK(max_batch >= 1 && max_batch <= 65535,
               "plan: max_batch must be in [1, 65535], got {}", max_batch);
  ADAMAS_CHECK(max_length >= 1, "plan: max_length must be ≥ 1, got {}", max_length);
  WorkspaceSizes w;
  const bool shared = policy.gqa == GqaMode::kGroupShared;
  detail::AttentionNeeds need =
      detail::attention_needs(layer, 1, max_length, num_q_heads, false, false);
  const auto take = [&need](const detail::AttentionNeeds& n) {
    need.partial_floats = std::max(need.partial_floats, n.partial_floats);
    need.counters = std::max(need.counters, n.counters);
  };
  // Attention: the splits shrink as the batch grows, so the largest workspace may be at any batch
  // size ≤ max_batch; every launch grows with its key count, so max_length covers shorter steps.
  const int keys = std::min(policy.budget, max_length);
  const int fused_length = std::min(max_length, detail::kMaxFusedSplits * detail::kSelectChunk);
  for (int b = 1; b <= max_batch; ++b) {
    take(detail::attention_needs(layer, b, max_length, num_q_heads, false, false));
    if (!sparse) continue;
    take(detail::attention_needs(layer, b, keys, num_q_heads, true, shared));
    take(detail::select_attention_needs(layer, b, fused_length, num_q_heads, shared));
  }
  w.partials = need.partial_floats;
  w.counters = need.counters;
  if (sparse) {
    const int group = num_q_heads / layer.num_kv_heads;
    const int rows = max_batch * (shared ? layer.num_kv_heads : num_q_heads);
    w.distances = static_cast<size_t>(rows) * distance_stride(max_length);
    w.histogram = static_cast<size_t>(rows) *
                  histogram_size(layer.code_spec(), policy.distance, group, shared);
    w.scratch = select_scratch_words(rows, max_length);
    w.indices = static_cast<size_t>(rows) * std::min(policy.budget, max_length);
    w.counts = rows;
  }
  return w;
}

size_t round_up(size_t bytes) { return (bytes + 255) / 256 * 256; }

}  // namespace

void SparseDecoder::reserve_selection(int rows, int max_length, int budget, int hist_size,
                                      cudaStream_t stream) {
  distances_.grow(static_cast<size_t>(rows) * distance_stride(max_length), "distances");
  const size_t hist_words = static_cast<size_t>(rows) * hist_size;
  if (histogram_.grow(hist_words, "the histogram")) {
    check(cudaMemsetAsync(histogram_.data(), 0, hist_words * sizeof(uint32_t), stream),
          "cudaMemset");
  }
  scratch_.grow(select_scratch_words(rows, max_length), "top-k scratch");
  indices_.grow(static_cast<size_t>(rows) * std::min(budget, max_length), "indices");
  counts_.grow(rows, "counts");
}

void SparseDecoder::plan(const DeviceLayer& layer, int max_batch, int max_length,
                         const PolicyConfig& policy) {
  check_policy(layer, policy);
  const WorkspaceSizes w = workspace_sizes(layer, num_q_heads_, max_batch, max_length, policy);
  distances_.grow(w.distances, "distances");
  if (histogram_.grow(w.histogram, "the histogram")) {
    check(cudaMemset(histogram_.data(), 0, w.histogram * sizeof(uint32_t)), "cudaMemset");
  }
  scratch_.grow(w.scratch, "top-k scratch");
  indices_.grow(w.indices, "indices");
  counts_.grow(w.counts, "counts");
  attention_.reserve(w.partials, w.counters);
  // The zeroing of the histogram and counters runs on the legacy default stream: done before the
  // steps' streams (graph captures included) use them.
  check(cudaDeviceSynchronize(), "SparseDecoder::plan");
}

size_t SparseDecoder::workspace_bytes(const DeviceLayer& layer, int num_q_heads, int max_batch,
                                      int max_length, const PolicyConfig& policy) {
  const WorkspaceSizes w = workspace_sizes(layer, num_q_heads, max_batch, max_length, policy);
  return round_up(w.distances * sizeof(uint16_t)) + round_up(w.histogram * sizeof(uint32_t)) +
         round_up(w.scratch * sizeof(uint32_t)) + round_up(w.indices * sizeof(int32_t)) +
         round_up(w.counts * sizeof(int32_t)) + round_up(w.partials * sizeof(float)) +
         round_up(w.counters * sizeof(uint32_t));
}

void SparseDecoder::use_workspace(void* base, size_t bytes, const DeviceLayer& layer, int batch,
                                  int max_length, const PolicyConfig& policy, cudaStream_t stream) {
  const WorkspaceSizes w = workspace_sizes(layer, num_q_heads_, batch, max_length, policy);
  const size_t need = workspace_bytes(layer, num_q_heads_, batch, max_length, policy);
  ADAMAS_CHECK(base != nullptr && reinterpret_cast<uintptr_t>(base) % 256 == 0,
               "workspace: the base address must be non-null and 256-byte aligned");
  ADAMAS_CHECK(bytes >= need,
               "workspace: {} bytes given, {} needed for batch {}, length ≤ {} under {} (size it "
               "with workspace_bytes for the largest step)",
               bytes, need, batch, max_length, policy.describe());
  auto* p = static_cast<std::byte*>(base);
  const auto carve = [&p](auto& buffer, size_t n) {
    using T = std::remove_pointer_t<decltype(buffer.data())>;
    buffer.attach(reinterpret_cast<T*>(p), n);
    p += round_up(n * sizeof(T));
  };
  // The histogram and the attention counters first and together: one memset zeroes both.
  carve(histogram_, w.histogram);
  auto* counters = reinterpret_cast<uint32_t*>(p);
  p += round_up(w.counters * sizeof(uint32_t));
  check(cudaMemsetAsync(base, 0, static_cast<size_t>(p - static_cast<std::byte*>(base)), stream),
        "cudaMemsetAsync");
  carve(distances_, w.distances);
  carve(scratch_, w.scratch);
  carve(indices_, w.indices);
  carve(counts_, w.counts);
  attention_.attach(reinterpret_cast<float*>(p), w.partials, counters, w.counters);
}

TopKArgs SparseDecoder::estimate(const DeviceLayer& layer, const DeviceBatch& batch, const float* q,
                                 const PolicyConfig& policy, cudaStream_t stream,
                                 StageTimer* timer) {
  layer.validate();
  batch.validate();
  check_heads(layer, num_q_heads_);
  check_policy(layer, policy);
  const bool shared = policy.gqa == GqaMode::kGroupShared;
  const int group = num_q_heads_ / layer.num_kv_heads;
  const int rows = batch.batch * (shared ? layer.num_kv_heads : num_q_heads_);
  const size_t stride = distance_stride(batch.max_length);
  const int hist_size = histogram_size(layer.code_spec(), policy.distance, group, shared);
  reserve_selection(rows, batch.max_length, policy.budget, hist_size, stream);
  index_stride_ = static_cast<size_t>(std::min(policy.budget, batch.max_length));

  // Query encoding is fused into the estimate kernel: the encode stage is empty on the GPU.
  if (timer) timer->record(0, stream);
  if (timer) timer->record(1, stream);
  EstimateArgs e;
  e.queries = q;
  e.num_q_heads = num_q_heads_;
  e.distance = policy.distance;
  e.sum_heads = shared;
  e.exclude_last = true;
  e.out = distances_.data();
  e.out_stride = stride;
  e.histogram = histogram_.data();
  estimate_distances(layer, batch, e, stream);
  if (timer) timer->record(2, stream);
  TopKArgs t;
  t.values = distances_.data();
  t.value_stride = stride;
  t.histogram = histogram_.data();
  t.histogram_size = hist_size;
  t.lengths = batch.lengths;
  t.rows_per_seq = rows / batch.batch;
  t.rows = rows;
  t.max_length = batch.max_length;
  t.budget = policy.budget;
  t.add_current = true;
  t.out = indices_.data();
  t.out_stride = index_stride_;
  t.counts = counts_.data();
  return t;
}

void SparseDecoder::select(const DeviceLayer& layer, const DeviceBatch& batch, const float* q,
                           const PolicyConfig& policy, cudaStream_t stream) {
  select_smallest(estimate(layer, batch, q, policy, stream, nullptr), scratch_.data(), stream);
}

void SparseDecoder::run(const DeviceLayer& layer, const DeviceBatch& batch, const float* q,
                        const PolicyConfig& policy, float scale, float* out, cudaStream_t stream,
                        StageTimer* timer) {
  const TopKArgs t = estimate(layer, batch, q, policy, stream, timer);
  const bool shared = policy.gqa == GqaMode::kGroupShared;
  const int rows = t.rows;
  const int chunks = (batch.max_length + detail::kSelectChunk - 1) / detail::kSelectChunk;
  const bool fused = topk_path_ == TopKPath::kFused ||
                     (topk_path_ == TopKPath::kAuto && chunks >= 8 && rows * chunks <= 1024);
  if (fused) {  // count pass, then select + attend in one kernel
    select_count(t, scratch_.data(), stream);
    if (timer) timer->record(3, stream);  // top-k: the count pass; attention: the fused kernel
    select_sparse_decode_attention(layer, batch, q, num_q_heads_, t, shared, scale, out,
                                   scratch_.data(), attention_, stream);
    if (timer) timer->record(4, stream);
    return;
  }
  select_smallest(t, scratch_.data(), stream);
  if (timer) timer->record(3, stream);
  SparseArgs s;
  s.indices = indices_.data();
  s.index_stride = index_stride_;
  s.counts = counts_.data();
  s.max_count = std::min(policy.budget, batch.max_length);
  s.shared_rows = shared;
  sparse_decode_attention(layer, batch, q, num_q_heads_, s, scale, out, attention_, stream);
  if (timer) timer->record(4, stream);
}

void SparseDecoder::run_dense(const DeviceLayer& layer, const DeviceBatch& batch, const float* q,
                              float scale, float* out, cudaStream_t stream) {
  dense_decode_attention(layer, batch, q, num_q_heads_, scale, out, attention_, stream);
}

void SparseDecoder::attend(const DeviceLayer& layer, const DeviceBatch& batch, const float* q,
                           const SparseArgs& args, float scale, float* out, cudaStream_t stream) {
  sparse_decode_attention(layer, batch, q, num_q_heads_, args, scale, out, attention_, stream);
}

std::vector<std::pair<const void*, size_t>> SparseDecoder::workspaces() const {
  return {{distances_.data(), distances_.size() * sizeof(uint16_t)},
          {histogram_.data(), histogram_.size() * sizeof(uint32_t)},
          {scratch_.data(), scratch_.size() * sizeof(uint32_t)},
          {indices_.data(), indices_.size() * sizeof(int32_t)},
          {counts_.data(), counts_.size() * sizeof(int32_t)},
          {attention_.partials_data(), attention_.partials_capacity() * sizeof(float)},
          {attention_.counters_data(), attention_.counters_capacity() * sizeof(uint32_t)}};
}

}  // namespace adamas::cuda
