#include "adamas/decode/paged_decode.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <span>
#include <vector>

#include "adamas/core/attention.h"
#include "adamas/core/estimate.h"
#include "adamas/core/topk.h"
#include "common/check.h"
#include "common/parallel.h"

namespace adamas {

void PagedLayer::validate() const {
  ADAMAS_CHECK(k_pool != nullptr && v_pool != nullptr, "paged layer: null K or V pool");
  ADAMAS_CHECK(num_kv_heads >= 1, "paged layer: num_kv_heads must be ≥ 1, got {}", num_kv_heads);
  ADAMAS_CHECK(head_dim >= 1 && head_dim <= 256,
               "paged layer: head_dim must be in [1, 256], got {}", head_dim);
  ADAMAS_CHECK(page_size >= 1, "paged layer: page_size must be ≥ 1, got {}", page_size);
  ADAMAS_CHECK(num_pages >= 1, "paged layer: num_pages must be ≥ 1, got {}", num_pages);
  ADAMAS_CHECK(bits >= 1 && bits <= kMaxCodeBits, "paged layer: bits must be in [1, {}], got {}",
               kMaxCodeBits, bits);
  if (code_pool != nullptr) {
    ADAMAS_CHECK(thresholds != nullptr, "paged layer: key codes without thresholds");
    code_spec().validate();
  }
}

PagedKV PagedLayer::kv(const BatchView& batch, int b, int h) const {
  PagedKV v;
  v.k_pool = k_pool;
  v.v_pool = v_pool;
  v.page_stride = kv_page_stride;
  v.head_offset = static_cast<size_t>(h) * kv_head_stride;
  v.page_ids = batch.page_indices + batch.page_indptr[b];
  v.page_size = page_size;
  v.head_dim = head_dim;
  v.length = batch.lengths[b];
  v.dtype = dtype;
  return v;
}

PagedCodes PagedLayer::codes(const BatchView& batch, int b, int h) const {
  PagedCodes c;
  c.pool = code_pool;
  c.page_stride = code_page_stride;
  c.head_offset = static_cast<size_t>(h) * code_head_stride;
  c.page_ids = batch.page_indices + batch.page_indptr[b];
  c.page_size = page_size;
  c.slot_stride = code_slot_stride(page_size);
  c.length = batch.lengths[b];
  return c;
}

namespace {

std::span<const float> head_thresholds(const PagedLayer& layer, int h) {
  return {layer.thresholds + static_cast<size_t>(h) * kMaxThermoPlanes,
          static_cast<size_t>((1 << layer.bits) - 1)};
}

// The batch's tables against the pool: every length ≥ 1, enough pages, page ids in the pool.
// Read once per call on the host (the CPU's tables are host memory).
void check_batch(const PagedLayer& layer, const BatchView& batch) {
  batch.validate();
  for (int b = 0; b < batch.batch; ++b) {
    const int length = batch.lengths[b];
    ADAMAS_CHECK(length >= 1 && length <= batch.max_length,
                 "lengths[{}] = {} is outside [1, max_length = {}]", b, length, batch.max_length);
    const int pages = batch.page_indptr[b + 1] - batch.page_indptr[b];
    ADAMAS_CHECK(static_cast<int64_t>(pages) * layer.page_size >= length,
                 "sequence {} holds {} tokens but has {} pages of {} (page_indptr)", b, length,
                 pages, layer.page_size);
    for (int i = batch.page_indptr[b]; i < batch.page_indptr[b + 1]; ++i) {
      ADAMAS_CHECK(batch.page_indices[i] >= 0 && batch.page_indices[i] < layer.num_pages,
                   "page_indices[{}] = {} is outside the pool [0, {})", i, batch.page_indices[i],
                   layer.num_pages);
    }
  }
}

void check_heads(const PagedLayer& layer, int num_q_heads) {
  ADAMAS_CHECK(num_q_heads >= 1 && num_q_heads % layer.num_kv_heads == 0,
               "num_q_heads ({}) must be a positive multiple of num_kv_heads ({})", num_q_heads,
               layer.num_kv_heads);
}

float effective_scale(const PagedLayer& layer, float scale) {
  return scale > 0 ? scale : 1.0f / std::sqrt(static_cast<float>(layer.head_dim));
}

bool is_dense(const PolicyConfig& policy, int length) {
  return policy.kind == PolicyKind::kFull || policy.budget >= length;
}

// The selection of task (b, j) into rows `out` (stride `stride`) and `counts`: one row per query
// head of the group, or one shared row. The adamas policy's semantics (policies.cc): budget − 1
// smallest distances among the earlier tokens, then the current one.
void select_task(const PagedLayer& layer, const BatchView& batch, int b, int j, const float* q,
                 int group, const PolicyConfig& policy, int32_t* out, size_t stride,
                 int32_t* counts) {
  const bool shared = policy.gqa == GqaMode::kGroupShared;
  const int rows = shared ? 1 : group;
  const int length = batch.lengths[b];
  if (is_dense(policy, length)) {
    for (int r = 0; r < rows; ++r) {
      std::iota(out + r * stride, out + r * stride + length, 0);
      counts[r] = length;
    }
    return;
  }
  const CodeSpec spec = layer.code_spec();
  const int past = length - 1;
  thread_local std::vector<QueryCode> qcodes;
  thread_local std::vector<uint16_t> distances;
  qcodes.resize(group);
  for (int h = 0; h < group; ++h) {
    qcodes[h] =
        encode_query(spec, head_thresholds(layer, j), q + static_cast<size_t>(h) * layer.head_dim);
  }
  PagedCodes codes = layer.codes(batch, b, j);
  codes.length = past;
  distances.resize(static_cast<size_t>(rows) * past);
  estimate_distances(spec, policy.distance, qcodes.data(), group, codes, shared, distances.data(),
                     past);
  for (int r = 0; r < rows; ++r) {
    int32_t* row = out + r * stride;
    int c = select_smallest(distances.data() + static_cast<size_t>(r) * past, past,
                            policy.budget - 1, row);
    row[c++] = past;
    counts[r] = c;
  }
}

void check_selection_args(const PagedLayer& layer, const BatchView& batch, int num_q_heads) {
  layer.validate();
  check_heads(layer, num_q_heads);
  check_batch(layer, batch);
}

}  // namespace

void check_paged_policy(const PolicyConfig& policy) {
  policy.validate();
  ADAMAS_CHECK(policy.kind == PolicyKind::kFull || policy.kind == PolicyKind::kAdamas,
               "policy {}: the paged decode ops run `full` and `adamas` (select with oracle, "
               "quest or streaming through the C++ runtime)",
               policy.describe());
  if (policy.kind != PolicyKind::kAdamas) return;
  ADAMAS_CHECK(!policy.calibrate && policy.distance != Distance::kIP && policy.keep_sinks == 0 &&
                   policy.keep_recent == 0,
               "policy {}: thresholds=calibrated, dist=ip, keep_sinks and keep_recent run in the "
               "C++ CPU runtime only for now (the paged ops run the paper's estimator)",
               policy.describe());
}

int selection_rows(const PagedLayer& layer, int batch, int num_q_heads,
                   const PolicyConfig& policy) {
  return batch * (policy.gqa == GqaMode::kGroupShared ? layer.num_kv_heads : num_q_heads);
}

void paged_append(const PagedLayer& layer, const int32_t* slots, int n, const void* k,
                  const void* v, DType src) {
  layer.validate();
  ADAMAS_CHECK(n >= 0, "append: n must be ≥ 0, got {}", n);
  const int64_t capacity = static_cast<int64_t>(layer.num_pages) * layer.page_size;
  for (int i = 0; i < n; ++i) {
    ADAMAS_CHECK(slots[i] >= 0 && slots[i] < capacity,
                 "append: slots[{}] = {} is outside the pool [0, {} pages × {})", i, slots[i],
                 layer.num_pages, layer.page_size);
  }
  const int H = layer.num_kv_heads, d = layer.head_dim;
  const size_t row = static_cast<size_t>(d) * dtype_size(layer.dtype);
  const CodeSpec spec = layer.code_spec();
  // One task per head, its tokens in order: a code store covers a group of slots, so two
  // threads must not encode into the same page of one head.
  parallel_for(H, 0, [&](int h) {
    thread_local std::vector<float> x;
    x.resize(d);
    for (int i = 0; i < n; ++i) {
      const int page = slots[i] / layer.page_size, slot = slots[i] % layer.page_size;
      const size_t at = h * layer.kv_head_stride + page * layer.kv_page_stride + slot * row;
      const size_t from = (static_cast<size_t>(i) * H + h) * d * dtype_size(src);
      convert_to_f32(static_cast<const std::byte*>(k) + from, src, x.data(), d);
      convert_from_f32(x.data(), layer.k_pool + at, layer.dtype, d);
      convert_to_f32(static_cast<const std::byte*>(v) + from, src, x.data(), d);
      convert_from_f32(x.data(), layer.v_pool + at, layer.dtype, d);
      if (layer.code_pool == nullptr) continue;
      uint64_t* code_page =
          layer.code_pool + h * layer.code_head_stride + page * layer.code_page_stride;
      encode_keys(spec, head_thresholds(layer, h), layer.k_pool + at, layer.dtype, 1, d, code_page,
                  code_slot_stride(layer.page_size), slot);
    }
  });
}

void paged_select(const PagedLayer& layer, const BatchView& batch, const float* q, int num_q_heads,
                  const PolicyConfig& policy, int32_t* indices, size_t index_stride,
                  int32_t* counts) {
  check_paged_policy(policy);
  ADAMAS_CHECK(policy.kind == PolicyKind::kAdamas,
               "select: policy {} selects nothing (adamas does)", policy.describe());
  check_selection_args(layer, batch, num_q_heads);
  ADAMAS_CHECK(layer.code_pool != nullptr, "select: the layer stores no key codes");
  ADAMAS_CHECK(index_stride >= static_cast<size_t>(std::min(policy.budget, batch.max_length)),
               "select: index_stride {} is below min(budget, max_length) = {}", index_stride,
               std::min(policy.budget, batch.max_length));
  const int H = layer.num_kv_heads, group = num_q_heads / H;
  const bool shared = policy.gqa == GqaMode::kGroupShared;
  parallel_for(batch.batch * H, 0, [&](int task) {
    const int b = task / H, j = task % H;
    const size_t r0 =
        shared ? static_cast<size_t>(b) * H + j : static_cast<size_t>(b) * num_q_heads + j * group;
    select_task(layer, batch, b, j,
                q + (static_cast<size_t>(b) * num_q_heads + j * group) * layer.head_dim, group,
                policy, indices + r0 * index_stride, index_stride, counts + r0);
  });
}

void paged_sparse_attention(const PagedLayer& layer, const BatchView& batch, const float* q,
                            int num_q_heads, const int32_t* indices, size_t index_stride,
                            const int32_t* counts, bool shared_rows, float scale, float* out) {
  check_selection_args(layer, batch, num_q_heads);
  const int H = layer.num_kv_heads, group = num_q_heads / H, d = layer.head_dim;
  scale = effective_scale(layer, scale);
  parallel_for(batch.batch * H, 0, [&](int task) {
    const int b = task / H, j = task % H;
    const PagedKV kv = layer.kv(batch, b, j);
    const size_t q0 = static_cast<size_t>(b) * num_q_heads + j * group;
    if (shared_rows) {
      const size_t r = static_cast<size_t>(b) * H + j;
      sparse_decode_attention(q + q0 * d, group, kv, indices + r * index_stride, counts[r], scale,
                              out + q0 * d);
      return;
    }
    for (int h = 0; h < group; ++h) {
      const size_t r = q0 + h;
      sparse_decode_attention(q + r * d, 1, kv, indices + r * index_stride, counts[r], scale,
                              out + r * d);
    }
  });
}

void paged_dense_attention(const PagedLayer& layer, const BatchView& batch, const float* q,
                           int num_q_heads, float scale, float* out) {
  check_selection_args(layer, batch, num_q_heads);
  const int H = layer.num_kv_heads, group = num_q_heads / H, d = layer.head_dim;
  scale = effective_scale(layer, scale);
  parallel_for(batch.batch * H, 0, [&](int task) {
    const int b = task / H, j = task % H;
    const size_t q0 = (static_cast<size_t>(b) * num_q_heads + j * group) * d;
    dense_decode_attention(q + q0, group, layer.kv(batch, b, j), scale, out + q0);
  });
}

void paged_decode(const PagedLayer& layer, const BatchView& batch, const float* q, int num_q_heads,
                  const PolicyConfig& policy, float scale, float* out) {
  check_paged_policy(policy);
  check_selection_args(layer, batch, num_q_heads);
  ADAMAS_CHECK(policy.kind != PolicyKind::kAdamas || layer.code_pool != nullptr,
               "decode: policy {} reads key codes, the layer stores none", policy.describe());
  const int H = layer.num_kv_heads, group = num_q_heads / H, d = layer.head_dim;
  const bool shared = policy.gqa == GqaMode::kGroupShared;
  scale = effective_scale(layer, scale);
  parallel_for(batch.batch * H, 0, [&](int task) {
    const int b = task / H, j = task % H;
    const PagedKV kv = layer.kv(batch, b, j);
    const size_t q0 = (static_cast<size_t>(b) * num_q_heads + j * group) * d;
    if (is_dense(policy, kv.length)) {
      dense_decode_attention(q + q0, group, kv, scale, out + q0);
      return;
    }
    const size_t stride = static_cast<size_t>(policy.budget);
    thread_local std::vector<int32_t> rows, counts;
    rows.resize(group * stride);
    counts.resize(group);
    select_task(layer, batch, b, j, q + q0, group, policy, rows.data(), stride, counts.data());
    if (shared) {
      sparse_decode_attention(q + q0, group, kv, rows.data(), counts[0], scale, out + q0);
      return;
    }
    for (int h = 0; h < group; ++h) {
      sparse_decode_attention(q + q0 + h * d, 1, kv, rows.data() + h * stride, counts[h], scale,
                              out + q0 + h * d);
    }
  });
}

}  // namespace adamas
