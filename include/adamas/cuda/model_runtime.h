// The CUDA model runtime: a Session backend (model/session_backend.h) that runs a Llama-family
// model on one GPU. Weights are uploaded once (bf16/f16 as stored; f32 as bf16 unless
// RuntimeOptions::gpu_f32_weights, which runs every product in fp32), the KV cache and key codes
// live in a DeviceKVCache, prefill runs chunk by chunk (cuBLAS products, tensor-core flash
// attention over the paged cache), and a decode step of a ragged batch is one upload of its
// tokens and page tables, the layers' kernels, and one copy of the logits back — captured as a
// CUDA graph per (batch size, context bucket) and replayed.
#pragma once

#include <memory>

#include "adamas/model/session_backend.h"

namespace adamas::cuda {

std::unique_ptr<model::SessionBackend> make_cuda_session(const model::LlamaModel& model,
                                                         model::RuntimeOptions options);

}  // namespace adamas::cuda
