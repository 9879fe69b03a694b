#include "torch_ops/tensors.h"

#include <limits>
#include <unordered_map>

#include "common/check.h"

namespace adamas::torch_ops {

DType dtype_of(const at::Tensor& t, const char* name) {
  switch (t.scalar_type()) {
    case at::kFloat:
      return DType::kF32;
    case at::kHalf:
      return DType::kF16;
    case at::kBFloat16:
      return DType::kBF16;
    default:
      throw Error(fmt::format("{}: dtype {} is not supported (float32, float16 or bfloat16)", name,
                              std::string(c10::toString(t.scalar_type()))));
  }
}

void check_same_device(const at::Tensor& t, const char* name, const at::Device& device) {
  ADAMAS_CHECK(t.device() == device, "{} is on {}, the cache on {}", name, t.device().str(),
               device.str());
}

void check_selection(const at::Tensor& indices, const at::Tensor& counts, int64_t rows, bool shared,
                     const at::Device& device) {
  ADAMAS_CHECK(indices.dim() == 2 && indices.size(0) == rows && indices.scalar_type() == at::kInt,
               "indices must be int32 [rows = {}, k] (rows: batch × {})", rows,
               shared ? "num_kv_heads (shared)" : "num_q_heads");
  ADAMAS_CHECK(counts.dim() == 1 && counts.size(0) == rows && counts.scalar_type() == at::kInt,
               "counts must be int32 [rows = {}]", rows);
  check_same_device(indices, "indices", device);
  check_same_device(counts, "counts", device);
}

void check_new_tokens(const Layout& l, const at::Tensor& k, const at::Tensor& v,
                      const at::Tensor& slots, const at::Device& device) {
  ADAMAS_CHECK(k.dim() == 3 && k.size(1) == l.num_kv_heads && k.size(2) == l.head_dim,
               "k must be [n, num_kv_heads = {}, head_dim = {}]", l.num_kv_heads, l.head_dim);
  ADAMAS_CHECK(v.sizes() == k.sizes() && v.scalar_type() == k.scalar_type(),
               "v must have k's shape and dtype");
  ADAMAS_CHECK(slots.dim() == 1 && slots.scalar_type() == at::kInt && slots.size(0) == k.size(0),
               "slots must be int32 [n = {}]", k.size(0));
  for (const auto& [t, name] : {std::pair{&k, "k"}, {&v, "v"}, {&slots, "slots"}}) {
    check_same_device(*t, name, device);
  }
  dtype_of(k, "k");
}

namespace {

void check_contiguous(const at::Tensor& t, const char* name) {
  ADAMAS_CHECK(t.is_contiguous(), "{} must be contiguous", name);
}

std::string shape(const at::Tensor& t) {
  std::string s = "[";
  for (int64_t i = 0; i < t.dim(); ++i) s += (i ? ", " : "") + std::to_string(t.size(i));
  return s + "]";
}

int as_int(int64_t v, const char* what) {
  ADAMAS_CHECK(v >= 0 && v <= std::numeric_limits<int32_t>::max(), "{} ({}) does not fit int32",
               what, v);
  return static_cast<int>(v);
}

}  // namespace

Layout check_cache(const at::Tensor& k_cache, const at::Tensor& v_cache, const at::Tensor& codes,
                   const at::Tensor& thresholds) {
  ADAMAS_CHECK(k_cache.dim() == 4,
               "k_cache must be [num_kv_heads, num_pages, page_size, head_dim], got shape {}",
               shape(k_cache));
  ADAMAS_CHECK(v_cache.sizes() == k_cache.sizes() && v_cache.scalar_type() == k_cache.scalar_type(),
               "v_cache ({}, {}) must have k_cache's shape and dtype ({}, {})", shape(v_cache),
               std::string(c10::toString(v_cache.scalar_type())), shape(k_cache),
               std::string(c10::toString(k_cache.scalar_type())));
  check_same_device(v_cache, "v_cache", k_cache.device());
  check_contiguous(k_cache, "k_cache");
  check_contiguous(v_cache, "v_cache");
  Layout l;
  l.num_kv_heads = as_int(k_cache.size(0), "num_kv_heads");
  l.num_pages = as_int(k_cache.size(1), "num_pages");
  l.page_size = as_int(k_cache.size(2), "page_size");
  l.head_dim = as_int(k_cache.size(3), "head_dim");
  l.dtype = dtype_of(k_cache, "k_cache");
  ADAMAS_CHECK(l.num_kv_heads >= 1 && l.num_pages >= 1 && l.page_size >= 1 && l.head_dim >= 1,
               "k_cache has an empty dimension: {}", shape(k_cache));
  if (!codes.defined() || codes.numel() == 0) return l;
  ADAMAS_CHECK(codes.dim() == 3 && codes.size(0) == l.num_kv_heads && codes.size(1) == l.num_pages,
               "codes must be [num_kv_heads = {}, num_pages = {}, code_page_words], got {}",
               l.num_kv_heads, l.num_pages, shape(codes));
  ADAMAS_CHECK(codes.scalar_type() == at::kLong, "codes must be int64, got {}",
               std::string(c10::toString(codes.scalar_type())));
  check_same_device(codes, "codes", k_cache.device());
  check_contiguous(codes, "codes");
  const int64_t per_bit =
      static_cast<int64_t>((l.head_dim + 63) / 64) * code_slot_stride(l.page_size);
  const int64_t words = codes.size(2);
  ADAMAS_CHECK(words % per_bit == 0 && words / per_bit >= 1 && words / per_bit <= kMaxCodeBits,
               "codes: {} words per page is not bits × {} (bits 1..3) for head_dim {} and "
               "page_size {}",
               words, per_bit, l.head_dim, l.page_size);
  l.bits = static_cast<int>(words / per_bit);
  ADAMAS_CHECK(thresholds.defined() && thresholds.dim() == 2 &&
                   thresholds.size(0) == l.num_kv_heads && thresholds.size(1) == kMaxThermoPlanes,
               "thresholds must be [num_kv_heads = {}, {}], got {}", l.num_kv_heads,
               kMaxThermoPlanes, thresholds.defined() ? shape(thresholds) : "undefined");
  ADAMAS_CHECK(thresholds.scalar_type() == at::kFloat, "thresholds must be float32, got {}",
               std::string(c10::toString(thresholds.scalar_type())));
  check_same_device(thresholds, "thresholds", k_cache.device());
  check_contiguous(thresholds, "thresholds");
  return l;
}

PagedLayer paged_layer(const Layout& l, const at::Tensor& k_cache, const at::Tensor& v_cache,
                       const at::Tensor& codes, const at::Tensor& thresholds, bool hadamard) {
  PagedLayer p;
  p.k_pool = static_cast<std::byte*>(k_cache.data_ptr());
  p.v_pool = static_cast<std::byte*>(v_cache.data_ptr());
  p.kv_page_stride = static_cast<size_t>(l.page_size) * l.head_dim * dtype_size(l.dtype);
  p.kv_head_stride = p.kv_page_stride * l.num_pages;
  if (l.bits > 0) {
    p.code_pool = reinterpret_cast<uint64_t*>(codes.data_ptr<int64_t>());
    p.code_page_stride = static_cast<size_t>(codes.size(2));
    p.code_head_stride = p.code_page_stride * l.num_pages;
    p.thresholds = thresholds.data_ptr<float>();
    p.bits = l.bits;
  }
  p.num_kv_heads = l.num_kv_heads;
  p.head_dim = l.head_dim;
  p.page_size = l.page_size;
  p.num_pages = l.num_pages;
  p.dtype = l.dtype;
  p.hadamard = hadamard;
  return p;
}

BatchView check_tables(const at::Tensor& page_indptr, const at::Tensor& page_indices,
                       const at::Tensor& lengths, int64_t max_length, const at::Device& device) {
  for (const auto& [t, name] : {std::pair{&page_indptr, "page_indptr"},
                                {&page_indices, "page_indices"},
                                {&lengths, "lengths"}}) {
    ADAMAS_CHECK(t->dim() == 1 && t->scalar_type() == at::kInt,
                 "{} must be a 1-D int32 tensor, got {} {}", name,
                 std::string(c10::toString(t->scalar_type())), shape(*t));
    check_same_device(*t, name, device);
    check_contiguous(*t, name);
  }
  ADAMAS_CHECK(lengths.size(0) >= 1, "lengths: the batch is empty");
  ADAMAS_CHECK(page_indptr.size(0) == lengths.size(0) + 1,
               "page_indptr has {} entries, the batch of {} sequences needs {}",
               page_indptr.size(0), lengths.size(0), lengths.size(0) + 1);
  ADAMAS_CHECK(max_length >= 1 && max_length <= std::numeric_limits<int32_t>::max(),
               "max_length must be in [1, 2^31), got {}", max_length);
  BatchView b;
  b.page_indptr = page_indptr.data_ptr<int32_t>();
  b.page_indices = page_indices.numel() ? page_indices.data_ptr<int32_t>() : b.page_indptr;
  b.lengths = lengths.data_ptr<int32_t>();
  b.batch = as_int(lengths.size(0), "batch");
  b.max_length = static_cast<int>(max_length);
  if (device.is_cpu()) {
    ADAMAS_CHECK(b.page_indptr[0] == 0 && b.page_indptr[b.batch] == page_indices.size(0),
                 "page_indptr must start at 0 and end at len(page_indices) = {}, got {} .. {}",
                 page_indices.size(0), b.page_indptr[0], b.page_indptr[b.batch]);
    for (int i = 0; i < b.batch; ++i) {
      ADAMAS_CHECK(b.page_indptr[i] <= b.page_indptr[i + 1],
                   "page_indptr must not decrease (at {})", i);
    }
  }
  return b;
}

at::Tensor queries_f32(const at::Tensor& q, const Layout& l, int batch) {
  ADAMAS_CHECK(q.dim() == 3 && q.size(0) == batch && q.size(2) == l.head_dim,
               "q must be [batch = {}, num_q_heads, head_dim = {}], got {}", batch, l.head_dim,
               shape(q));
  dtype_of(q, "q");
  ADAMAS_CHECK(q.size(1) >= 1 && q.size(1) % l.num_kv_heads == 0,
               "q has {} heads, not a positive multiple of num_kv_heads = {}", q.size(1),
               l.num_kv_heads);
  return q.to(at::kFloat).contiguous();
}

AttentionCall prepare_attention(const at::Tensor& q, const Layout& l, const at::Tensor& page_indptr,
                                const at::Tensor& page_indices, const at::Tensor& lengths,
                                int64_t max_length, const at::Device& device) {
  check_same_device(q, "q", device);
  AttentionCall c;
  c.batch = check_tables(page_indptr, page_indices, lengths, max_length, device);
  c.q = queries_f32(q, l, c.batch.batch);
  return c;
}

PolicyConfig parse_checked_policy(const std::string& spec, const Layout& l) {
  // A decode step passes the same spec for every layer: parse it once per thread.
  thread_local std::unordered_map<std::string, PolicyConfig> parsed;
  auto it = parsed.find(spec);
  if (it == parsed.end()) {
    PolicyConfig fresh = parse_policy(spec);
    check_paged_policy(fresh);
    if (parsed.size() >= 64) parsed.clear();  // bounded: callers use a handful of specs
    it = parsed.emplace(spec, std::move(fresh)).first;
  }
  const PolicyConfig& p = it->second;
  if (p.kind == PolicyKind::kAdamas) {
    ADAMAS_CHECK(l.bits > 0, "policy {} reads key codes, but no codes were given", p.describe());
    ADAMAS_CHECK(p.bits == l.bits, "policy {} reads {}-bit codes, the cache holds {}-bit codes",
                 p.describe(), p.bits, l.bits);
  }
  return p;
}

}  // namespace adamas::torch_ops
