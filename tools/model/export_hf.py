#!/usr/bin/env python3
"""Export a train.py checkpoint as a Hugging Face LlamaForCausalLM folder and, where
transformers is installed, check that transformers computes the same logits.

  python3 tools/model/export_hf.py --ckpt CKPT_DIR --tokenizer .data/carry/tokenizer.model --out models/adamas-tiny-8k

Writes config.json, model.safetensors (bf16; lm_head is tied to model.embed_tokens, so
only the embedding is stored), tokenizer.model, tokenizer_config.json, generation_config.json.
"""
import argparse, json, os, shutil, sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from model import Config, LlamaLM  # noqa: E402
from train import load_ckpt  # noqa: E402


def hf_config(cfg):
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": cfg["vocab_size"],
        "hidden_size": cfg["hidden_size"],
        "intermediate_size": cfg["intermediate_size"],
        "num_hidden_layers": cfg["num_hidden_layers"],
        "num_attention_heads": cfg["num_attention_heads"],
        "num_key_value_heads": cfg["num_key_value_heads"],
        "head_dim": cfg["head_dim"],
        "hidden_act": "silu",
        "max_position_embeddings": cfg["max_position_embeddings"],
        "rms_norm_eps": cfg["rms_norm_eps"],
        "rope_theta": cfg["rope_theta"],
        "rope_scaling": None,
        "attention_bias": False,
        "attention_dropout": 0.0,
        "mlp_bias": False,
        "tie_word_embeddings": cfg["tie_word_embeddings"],
        "bos_token_id": cfg["bos_token_id"],
        "eos_token_id": cfg["eos_token_id"],
        "initializer_range": 0.02,
        "pretraining_tp": 1,
        "use_cache": True,
        "torch_dtype": "bfloat16",
    }


def write_safetensors(tensors, path, metadata=None):
    hdr, off, blobs = {}, 0, []
    if metadata:
        hdr["__metadata__"] = metadata
    for k in sorted(tensors):
        t = tensors[k].contiguous()
        b = t.view(torch.int16).numpy().tobytes() if t.dtype == torch.bfloat16 else t.numpy().tobytes()
        hdr[k] = {"dtype": {torch.bfloat16: "BF16", torch.float32: "F32"}[t.dtype], "shape": list(t.shape),
                  "data_offsets": [off, off + len(b)]}
        off += len(b)
        blobs.append(b)
    h = json.dumps(hdr, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(len(h).to_bytes(8, "little"))
        f.write(h)
        for b in blobs:
            f.write(b)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--tokenizer", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    try:
        from safetensors.torch import save_file
    except ImportError:  # Debian 12 has no python3-safetensors: minimal writer (same format)
        save_file = write_safetensors
    sd, meta = load_ckpt(a.ckpt)
    cfg = meta["config"]
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(hf_config(cfg), f, indent=2)
        f.write("\n")
    with open(os.path.join(a.out, "generation_config.json"), "w") as f:
        json.dump({"bos_token_id": cfg["bos_token_id"], "eos_token_id": cfg["eos_token_id"], "do_sample": False}, f, indent=2)
        f.write("\n")
    # lets AutoTokenizer build transformers' LlamaTokenizer (BOS added, prefix space) from
    # tokenizer.model; it agrees with sentencepiece except on some runs of spaces (README)
    with open(os.path.join(a.out, "tokenizer_config.json"), "w") as f:
        json.dump({"tokenizer_class": "LlamaTokenizer", "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
                   "add_bos_token": True, "add_eos_token": False, "add_prefix_space": True, "legacy": False,
                   "clean_up_tokenization_spaces": False, "model_max_length": cfg["max_position_embeddings"]}, f, indent=2)
        f.write("\n")
    tensors = {k: v.to(torch.bfloat16).contiguous() for k, v in sd.items() if k != "lm_head.weight"}
    save_file(tensors, os.path.join(a.out, "model.safetensors"), metadata={"format": "pt"})
    shutil.copyfile(a.tokenizer, os.path.join(a.out, "tokenizer.model"))
    n = sum(v.numel() for v in tensors.values())
    print("exported %d tensors, %d parameters (step %d of %d) -> %s" % (len(tensors), n, meta["step"], meta["total_steps"], a.out))

    try:
        import transformers
        from transformers import LlamaForCausalLM
        print("transformers", transformers.__version__, "torch", torch.__version__)
    except ImportError:
        print("transformers not installed: equivalence check skipped")
        return
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    hf = LlamaForCausalLM.from_pretrained(a.out, dtype=torch.float32, attn_implementation="sdpa").to(dev).eval()
    mine = LlamaLM(Config(**cfg))
    mine.load_state_dict({k: v.float() for k, v in sd.items()}, strict=False)
    mine.to(dev).eval()
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(3, cfg["vocab_size"], (2, 1024), generator=g).to(dev)
    with torch.no_grad():
        a_ = hf(ids).logits.float()
        b_ = mine(ids).float()
    rel = ((a_ - b_).norm() / a_.norm()).item()
    print("HF vs train.py logits (fp32, 2x1024 random ids): max abs diff %.3e, rel L2 %.3e" % ((a_ - b_).abs().max().item(), rel))
    print("EQUIVALENCE", "OK" if rel < 1e-3 else "FAILED: transformers does not compute what train.py trained")
    rt = getattr(hf.config, "rope_theta", None) or (getattr(hf.config, "rope_parameters", None) or {}).get("rope_theta")
    print("transformers config: rope_theta", rt, "tie", hf.config.tie_word_embeddings, "head_dim", hf.config.head_dim,
          "heads", hf.config.num_attention_heads, "kv heads", hf.config.num_key_value_heads)


if __name__ == "__main__":
    main()
