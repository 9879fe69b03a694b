"""A plain float64 Llama/Qwen2 forward pass in numpy, written from the Hugging Face modeling code
(LlamaForCausalLM / Qwen2ForCausalLM, eager attention): an independent peer for the C++ runtime
on machines without torch. Recomputes the whole sequence at every step (no cache): slow, simple."""
import math

import numpy as np


def inv_freq(cfg):
    d = cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]
    base = cfg.get("rope_theta", 10000.0)
    inv = 1.0 / (base ** (np.arange(0, d, 2, dtype=np.float64) / d))
    rs = cfg.get("rope_scaling") or {}
    kind = rs.get("rope_type", rs.get("type", "default"))
    if kind == "linear":
        inv = inv / rs["factor"]
    elif kind == "llama3":
        factor, lo, hi = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"]
        old = rs["original_max_position_embeddings"]
        wavelen = 2 * math.pi / inv
        scaled = np.where(wavelen > old / lo, inv / factor, inv)
        smooth = (old / wavelen - lo) / (hi - lo)
        smoothed = (1 - smooth) * scaled / factor + smooth * scaled
        medium = ~(wavelen < old / hi) & ~(wavelen > old / lo)
        inv = np.where(medium, smoothed, scaled)
    elif kind != "default":
        raise ValueError("rope type %s" % kind)
    return inv


def rms_norm(x, w, eps):
    return w * (x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps))


def rope(x, pos, inv):  # x [T, H, d]; HF rotate_half layout
    ang = np.outer(pos, inv)                      # [T, d/2]
    cos = np.concatenate([np.cos(ang)] * 2, -1)[:, None, :]
    sin = np.concatenate([np.sin(ang)] * 2, -1)[:, None, :]
    half = x.shape[-1] // 2
    rot = np.concatenate([-x[..., half:], x[..., :half]], -1)
    return x * cos + rot * sin


def forward(w, cfg, ids):
    """All-position logits [T, vocab] for token ids `ids` (positions 0..T-1)."""
    W = {k: v.astype(np.float64) for k, v in w.items()}
    H, Hkv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    d = cfg.get("head_dim") or cfg["hidden_size"] // H
    eps = cfg["rms_norm_eps"]
    T = len(ids)
    pos = np.arange(T, dtype=np.float64)
    inv = inv_freq(cfg)
    x = W["model.embed_tokens.weight"][np.asarray(ids)]
    mask = np.triu(np.full((T, T), -np.inf), 1)
    for i in range(cfg["num_hidden_layers"]):
        p = "model.layers.%d." % i
        h = rms_norm(x, W[p + "input_layernorm.weight"], eps)

        def proj(name, inp):
            y = inp @ W[p + name + ".weight"].T
            return y + W[p + name + ".bias"] if (p + name + ".bias") in W else y

        q = rope(proj("self_attn.q_proj", h).reshape(T, H, d), pos, inv)
        k = rope(proj("self_attn.k_proj", h).reshape(T, Hkv, d), pos, inv)
        v = proj("self_attn.v_proj", h).reshape(T, Hkv, d)
        g = H // Hkv
        out = np.empty((T, H, d))
        for hh in range(H):
            s = q[:, hh] @ k[:, hh // g].T / math.sqrt(d) + mask
            s = np.exp(s - s.max(-1, keepdims=True))
            out[:, hh] = (s / s.sum(-1, keepdims=True)) @ v[:, hh // g]
        x = x + proj("self_attn.o_proj", out.reshape(T, H * d))
        h = rms_norm(x, W[p + "post_attention_layernorm.weight"], eps)
        gate = proj("mlp.gate_proj", h)
        x = x + proj("mlp.down_proj", gate / (1 + np.exp(-gate)) * proj("mlp.up_proj", h))
    x = rms_norm(x, W["model.norm.weight"], eps)
    head = W.get("lm_head.weight", W["model.embed_tokens.weight"])
    return x @ head.T


def greedy_reference(w, cfg, prompt, steps):
    """-> prefill logits [n, V], generated ids [steps], decode logits [steps, V] where
    decode_logits[k] are the logits after feeding generated[k]."""
    ids = list(prompt)
    logits = forward(w, cfg, ids)
    prefill = logits
    gen, dec = [], []
    nxt = int(np.argmax(logits[-1]))
    for _ in range(steps):
        gen.append(nxt)
        ids.append(nxt)
        last = forward(w, cfg, ids)[-1]
        dec.append(last)
        nxt = int(np.argmax(last))
    return prefill, np.array(gen), np.array(dec)
