#include "adamas/cuda/decode_attention.h"

#include <cmath>

#include "common/check.h"

namespace adamas::cuda {

void DeviceDecodeAttention::plan(const DecodePlan& plan) {
  plan.validate();
  const CacheConfig& cc = cache_.config();
  const PolicyConfig& p = plan.policy;
  ADAMAS_CHECK(p.kind == PolicyKind::kFull || p.kind == PolicyKind::kAdamas,
               "policy {} runs on the CPU only; the GPU runs full and adamas",
               policy_kind_name(p.kind));
  ADAMAS_CHECK(plan.num_q_heads % cc.num_kv_heads == 0,
               "num_q_heads ({}) must be a positive multiple of num_kv_heads ({})",
               plan.num_q_heads, cc.num_kv_heads);
  if (p.kind == PolicyKind::kAdamas) {
    ADAMAS_CHECK(p.bits == cc.codes.bits && p.hadamard == cc.codes.hadamard,
                 "policy {} reads {}-bit codes{}, but the GPU cache holds {}-bit codes{}",
                 p.describe(), p.bits, p.hadamard ? "" : " without Hadamard", cc.codes.bits,
                 cc.codes.hadamard ? "" : " without Hadamard");
    ADAMAS_CHECK(!p.calibrate,
                 "thresholds=calibrated runs on the CPU only for now (use --device cpu)");
    ADAMAS_CHECK(p.distance != Distance::kIP && p.keep_sinks == 0 && p.keep_recent == 0,
                 "policy {}: dist=ip, keep_sinks and keep_recent run on the CPU only for now "
                 "(use --device cpu)",
                 p.describe());
  }
  plan_ = plan;
  scale_ = plan.scale > 0 ? plan.scale : 1.0f / std::sqrt(static_cast<float>(cc.head_dim));
  decoder_ = std::make_unique<SparseDecoder>(plan.num_q_heads);
  // The decoder's plan covers its dense kernel too; a full policy plans as adamas over the
  // cache's codes (the selection workspaces are then sized but unused).
  PolicyConfig sized = p;
  if (p.kind == PolicyKind::kFull) {
    sized.kind = PolicyKind::kAdamas;
    sized.bits = cc.codes.bits;
    sized.hadamard = cc.codes.hadamard;
  }
  decoder_->plan(cache_.layer(0), plan.max_batch, plan.max_length, sized);
}

void DeviceDecodeAttention::run(int layer, const DecodeStep& step, const float* q, float* out) {
  ADAMAS_CHECK(decoder_ != nullptr, "decode attention: run() before plan()");
  const DeviceLayer view = cache_.layer(layer);
  const auto stream = static_cast<cudaStream_t>(step.stream);
  const PolicyConfig& p = plan_.policy;
  if (p.kind == PolicyKind::kFull || layer < p.dense_layers) {
    decoder_->run_dense(view, step.tables, q, scale_, out, stream);
  } else {
    decoder_->run(view, step.tables, q, p, scale_, out, stream);
  }
}

}  // namespace adamas::cuda
