#!/usr/bin/env python3
"""Reference logits from Hugging Face transformers on CUDA, for the check of the GPU runtime:
as hf_reference_logits.py (same prompts, same file layout, same tokenizer cases), but the model
runs on the GPU with attn_implementation="sdpa" in bf16 and/or f32 (TF32 off). Needs torch +
transformers + numpy and a CUDA GPU.

  python3 tools/model_check/make_checkpoints.py --out /tmp/model_check
  python3 tools/model_check/hf_gpu_reference_logits.py --checkpoints /tmp/model_check \
      models/adamas-tiny-8k --out tests/model/data
  python3 tools/model_check/hf_gpu_reference_logits.py models/adamas-tiny-8k --dtype bf16

Checkpoints: each positional DIR, and --checkpoints ROOT's --variants (default llama_mha,
llama_gqa,qwen2_bias: what make_checkpoints.py writes). The variant name is the directory's
name; its prompts are --prompts if given, else DIR/prompts.json, else
tests/model/data/<variant>.prompts.json (the shipped models/adamas-tiny-8k has its prompts
there, as hf_reference_logits.py --prompts is given for it).

Writes <out>/<variant>.hf-cuda-<dtype>.safetensors for each --dtype (default bf16,f32), with the
tensors of hf_reference_logits.py (prompt{i}.ids, .prefill_logits F32, .generated, .decode_logits
F32; logits are upcast to f32 whatever the model's dtype) and metadata: source, model_crc32
(of DIR/model.safetensors, as the CPU references), tokenizer_cases, dtype, device, attn, tf32,
torch, transformers, cuda, prompts_file, decode_steps.
"""
import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))
DATA = os.path.join(REPO, "tests", "model", "data")
DTYPES = ("bf16", "f32")


def dtype_list(s):
    out = [x.strip() for x in s.split(",") if x.strip()]
    bad = [x for x in out if x not in DTYPES]
    if not out or bad:
        raise argparse.ArgumentTypeError("expected bf16, f32 or bf16,f32, got %r" % s)
    return out


def checkpoint_dirs(positional, root, variants):
    dirs = list(positional)
    if root:
        dirs += [os.path.join(root, v) for v in variants.split(",") if v]
    return [os.path.normpath(d) for d in dirs]


def variant_name(ckpt):
    return os.path.basename(os.path.normpath(ckpt))


def prompts_file(ckpt, override=None, data_dir=DATA):
    """--prompts, else CKPT/prompts.json, else <data_dir>/<variant>.prompts.json; None if none."""
    for p in (override, os.path.join(ckpt, "prompts.json"),
              os.path.join(data_dir, variant_name(ckpt) + ".prompts.json")):
        if p and os.path.exists(p):
            return p
    return None


def output_path(out_dir, ckpt, dtype):
    return os.path.join(out_dir, "%s.hf-cuda-%s.safetensors" % (variant_name(ckpt), dtype))


def shown_path(path):
    """Relative to the repository when inside it, else <checkpoint dir name>/<file name>."""
    rel = os.path.relpath(os.path.abspath(path), REPO)
    if not rel.startswith(".."):
        return rel
    return os.path.join(os.path.basename(os.path.dirname(os.path.abspath(path))),
                        os.path.basename(path))


def exact_fp32():
    """No TF32: the switches hf_reference_logits.py sets (old API, then the new matmul one,
    consistently, so that nothing reading either API finds them mixed)."""
    import torch
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    try:
        torch.backends.cuda.matmul.fp32_precision = "ieee"
    except Exception:  # noqa: BLE001 (older torch)
        pass


def run_prompts(model, spec):
    """hf_reference_logits.run_prompts on CUDA (imported late: --dry-run needs no torch)."""
    from hf_reference_logits import run_prompts as run
    return run(model, spec, "cuda")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dirs", nargs="*", metavar="DIR", help="checkpoint directories")
    ap.add_argument("--checkpoints", default=None, help="output dir of make_checkpoints.py")
    ap.add_argument("--variants", default="llama_mha,llama_gqa,qwen2_bias",
                    help="subdirectories of --checkpoints to run")
    ap.add_argument("--prompts", default=None,
                    help="prompts.json for every checkpoint (default: see above)")
    ap.add_argument("--dtype", type=dtype_list, default=list(DTYPES),
                    help="bf16, f32 or bf16,f32 (default both)")
    ap.add_argument("--out", default=DATA)
    ap.add_argument("--dry-run", action="store_true",
                    help="print what would be run and written; no torch")
    a = ap.parse_args(argv)
    dirs = checkpoint_dirs(a.dirs, a.checkpoints, a.variants)
    if not dirs:
        ap.error("give checkpoint directories and/or --checkpoints ROOT")
    jobs = []
    for d in dirs:
        if not os.path.exists(os.path.join(d, "config.json")):
            ap.error("%s: no config.json" % d)
        pf = prompts_file(d, a.prompts)
        if pf is None:
            ap.error("%s: no prompts (%s/prompts.json or %s/%s.prompts.json); give --prompts" % (
                d, d, DATA, variant_name(d)))
        jobs.append((d, pf))
    if a.dry_run:
        for d, pf in jobs:
            for dt in a.dtype:
                print("%s (prompts %s) %s -> %s" % (d, pf, dt, output_path(a.out, d, dt)))
        return 0

    import torch
    import transformers
    sys.path.insert(0, HERE)
    import st_io
    from hf_reference_logits import tokenizer_cases

    if not torch.cuda.is_available():
        raise SystemExit("hf_gpu_reference_logits: no CUDA device")
    exact_fp32()
    device = torch.cuda.get_device_name(0)
    os.makedirs(a.out, exist_ok=True)
    for d, pf in jobs:
        with open(pf) as f:
            spec = json.load(f)
        st = os.path.join(d, "model.safetensors")
        crc = st_io.crc32(st) if os.path.exists(st) else ""
        if not crc:
            print("note: %s has no single model.safetensors: model_crc32 left empty" % d)
        cases = json.dumps(tokenizer_cases(d), ensure_ascii=False)
        for dt in a.dtype:
            tdtype = torch.bfloat16 if dt == "bf16" else torch.float32
            model = transformers.AutoModelForCausalLM.from_pretrained(
                d, dtype=tdtype, attn_implementation="sdpa").to("cuda").eval()
            tensors = run_prompts(model, spec)
            del model
            torch.cuda.empty_cache()
            meta = {"source": "transformers %s, torch %s, %s, %s sdpa%s" % (
                        transformers.__version__, torch.__version__, device, dt,
                        ", TF32 off" if dt == "f32" else ""),
                    "model_crc32": crc, "tokenizer_cases": cases, "dtype": dt,
                    "device": device, "attn": "sdpa", "tf32": "off",
                    "torch": torch.__version__, "transformers": transformers.__version__,
                    "cuda": str(torch.version.cuda),
                    "prompts_file": shown_path(pf),
                    "decode_steps": spec["decode_steps"]}
            path = output_path(a.out, d, dt)
            st_io.write(path, tensors, meta)
            print("wrote", path, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
