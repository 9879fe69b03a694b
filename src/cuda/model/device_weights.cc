#include "cuda/model/device_weights.h"

#include <algorithm>

#include "adamas/cuda/model_kernels.h"
#include "common/check.h"

namespace adamas::cuda {
namespace {

constexpr size_t kStagingBytes = size_t{256} << 20;  // per conversion chunk

}  // namespace

DeviceWeights::DeviceWeights(const model::LlamaModel& model, DType dtype, cudaStream_t stream,
                             const std::function<void(size_t, size_t)>& progress)
    : dtype_(dtype), progress_(progress) {
  const model::ModelWeights& w = model.weights();
  const model::ModelConfig& c = model.config();
  total_ = w.bytes;
  embed_ = matrix({&w.embed}, stream);
  const bool tied = w.lm_head.data == w.embed.data;
  lm_head_ = tied ? embed_ : matrix({&w.lm_head}, stream);
  final_norm_ = vector({&w.final_norm});
  inv_freq_ = vector({&model.inv_freq()});
  auto opt = [&](std::initializer_list<const std::vector<float>*> parts) -> const float* {
    for (const auto* p : parts)
      if (!p->empty()) return vector(parts);
    return nullptr;
  };
  for (int i = 0; i < c.num_layers; ++i) {
    const model::LayerWeights& l = w.layers[i];
    DeviceLayerWeights d;
    d.qkv = matrix({&l.q, &l.k, &l.v}, stream);
    d.o = matrix({&l.o}, stream);
    d.gate_up = matrix({&l.gate, &l.up}, stream);
    d.down = matrix({&l.down}, stream);
    d.attn_norm = vector({&l.attn_norm});
    d.mlp_norm = vector({&l.mlp_norm});
    d.qkv_bias = opt({&l.q_bias, &l.k_bias, &l.v_bias});
    d.o_bias = opt({&l.o_bias});
    d.gate_up_bias = opt({&l.gate_bias, &l.up_bias});
    d.down_bias = opt({&l.down_bias});
    for (const DeviceMatrix* m : {&d.qkv, &d.o, &d.gate_up, &d.down})
      step_bytes_ += size_t(m->rows) * m->cols * dtype_size(dtype_);
    layers_.push_back(d);
  }
  step_bytes_ += size_t(lm_head_.rows) * lm_head_.cols * dtype_size(dtype_);
  check(cudaStreamSynchronize(stream), "weight upload");
  staging_ = DeviceBuffer<std::byte>();  // only needed while converting
}

DeviceMatrix DeviceWeights::matrix(std::initializer_list<const model::Matrix*> parts,
                                   cudaStream_t stream) {
  DeviceMatrix out;
  out.dtype = dtype_;
  out.cols = (*parts.begin())->cols;
  for (const model::Matrix* m : parts) {
    ADAMAS_CHECK(m->cols == out.cols, "fused weight parts differ in columns ({} vs {})", m->cols,
                 out.cols);
    out.rows += m->rows;
  }
  const size_t elem = dtype_size(dtype_);
  DeviceBuffer<std::byte> buf(size_t(out.rows) * out.cols * elem);
  std::byte* dst = buf.data();
  for (const model::Matrix* m : parts) {
    const size_t count = size_t(m->rows) * m->cols;
    const size_t src_elem = dtype_size(m->dtype);
    if (m->dtype == dtype_) {  // straight from the mapping
      check(cudaMemcpyAsync(dst, m->data, count * elem, cudaMemcpyHostToDevice, stream),
            "weight upload");
    } else {  // through the staging buffer, converted on the GPU
      const size_t chunk = kStagingBytes / src_elem;
      staging_.resize(chunk * src_elem);
      for (size_t e = 0; e < count; e += chunk) {
        const size_t k = std::min(chunk, count - e);
        check(
            cudaMemcpyAsync(staging_.data(), static_cast<const std::byte*>(m->data) + e * src_elem,
                            k * src_elem, cudaMemcpyHostToDevice, stream),
            "weight upload");
        cast_elements(staging_.data(), m->dtype, static_cast<int64_t>(k), dst + e * elem, dtype_,
                      stream);
        check(cudaStreamSynchronize(stream), "weight upload");  // staging is reused
      }
    }
    dst += count * elem;
    done_ += count * src_elem;
    if (progress_) progress_(done_, total_);
  }
  bytes_ += buf.size();
  out.data = buf.data();
  storage_.push_back(std::move(buf));
  return out;
}

const float* DeviceWeights::vector(std::initializer_list<const std::vector<float>*> parts) {
  std::vector<float> host;
  for (const auto* p : parts) host.insert(host.end(), p->begin(), p->end());
  DeviceBuffer<std::byte> buf(host.size() * sizeof(float));
  check(cudaMemcpy(buf.data(), host.data(), buf.size(), cudaMemcpyHostToDevice), "weight upload");
  bytes_ += buf.size();
  const float* p = reinterpret_cast<const float*>(buf.data());
  storage_.push_back(std::move(buf));
  return p;
}

}  // namespace adamas::cuda
