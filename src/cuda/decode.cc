#include "adamas/cuda/decode.h"

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

void SparseDecoder::run(const DeviceLayer& layer, const DeviceBatch& batch, const float* q,
                        const SparseConfig& config, float scale, float* out, cudaStream_t stream,
                        StageTimer* timer) {
  layer.validate();
  batch.validate();
  ADAMAS_CHECK(num_q_heads_ >= 1 && num_q_heads_ % layer.num_kv_heads == 0,
               "num_q_heads ({}) must be a positive multiple of num_kv_heads ({})", num_q_heads_,
               layer.num_kv_heads);
  ADAMAS_CHECK(config.budget >= 1, "budget must be ≥ 1, got {}", config.budget);
  const int group = num_q_heads_ / layer.num_kv_heads;
  const int rows = batch.batch * (config.shared_gqa ? layer.num_kv_heads : num_q_heads_);
  const size_t stride = (static_cast<size_t>(batch.max_length) + 7) / 8 * 8;
  const int hist_size =
      histogram_size(layer.code_spec(), config.distance, group, config.shared_gqa);

  distances_.resize(rows * stride);
  const size_t hist_words = static_cast<size_t>(rows) * hist_size;
  if (hist_words > histogram_.size()) {
    histogram_.resize(hist_words);
    histogram_.fill_bytes(0, stream);
  }
  scratch_.resize(select_scratch_words(rows, batch.max_length));
  index_stride_ = static_cast<size_t>(std::min(config.budget, batch.max_length));
  indices_.resize(rows * index_stride_);
  counts_.resize(rows);

  // Query encoding is fused into the estimate kernel: the encode stage is empty on the GPU.
  if (timer) timer->record(0, stream);
  if (timer) timer->record(1, stream);
  EstimateArgs e;
  e.queries = q;
  e.num_q_heads = num_q_heads_;
  e.distance = config.distance;
  e.sum_heads = config.shared_gqa;
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
  t.budget = config.budget;
  t.add_current = true;
  t.out = indices_.data();
  t.out_stride = index_stride_;
  t.counts = counts_.data();
  using Path = SparseConfig::TopKPath;
  const int chunks = (batch.max_length + detail::kSelectChunk - 1) / detail::kSelectChunk;
  const bool fused = config.topk_path == Path::kFused ||
                     (config.topk_path == Path::kAuto && chunks >= 8 && rows * chunks <= 1024);
  if (fused) {  // count pass, then select + attend in one kernel
    select_count(t, scratch_.data(), stream);
    if (timer) timer->record(3, stream);  // top-k: the count pass; attention: the fused kernel
    select_sparse_decode_attention(layer, batch, q, num_q_heads_, t, config.shared_gqa, scale, out,
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
  s.max_count = std::min(config.budget, batch.max_length);
  s.shared_rows = config.shared_gqa;
  sparse_decode_attention(layer, batch, q, num_q_heads_, s, scale, out, attention_, stream);
  if (timer) timer->record(4, stream);
}

void SparseDecoder::run_dense(const DeviceLayer& layer, const DeviceBatch& batch, const float* q,
                              float scale, float* out, cudaStream_t stream) {
  dense_decode_attention(layer, batch, q, num_q_heads_, scale, out, attention_, stream);
}

}  // namespace adamas::cuda
