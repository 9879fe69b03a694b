#!/usr/bin/env python3
"""Train the Adamas tiny Llama (resumable). See tools/model/README.md.

Mixture per row (fixed seeds; batch for step s is a pure function of (seed, s)):
  50 % corpus text, 15 % passkey on repetitive filler, 10 % passkey on corpus filler,
  10 % multi-key on repetitive filler, 15 % multi-key on corpus filler (tasks.py).
Loss: sum(w * CE) / #targets, w = 50 on answer tokens, 0 on unpredictable random digits,
1 elsewhere. Sequence length grows geometrically from --min-len to --max-len over the
first --grow-frac of the steps (multiples of 256), batch tokens constant.
Checkpoints hold bf16 weights only (split into <= 15 MiB parts); on resume the AdamW state
is rebuilt and the learning rate re-warmed over --rewarm steps.
"""
import argparse, glob, io, json, lzma, math, os, sys, time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sentencepiece as spm  # noqa: E402
import tasks  # noqa: E402
from model import Config, LlamaLM  # noqa: E402

T0 = time.time()
KIND_CODES = {"text": 0, "pk_rep": 1, "pk_real": 2, "mk_rep": 3, "mk_real": 4}


def log(*a):
    print("[%7.1fs]" % (time.time() - T0), *a, flush=True)


def load_stream(path):
    with lzma.open(path) as f:
        return np.frombuffer(f.read(), dtype="<u2")


def seq_len(step, total, a):
    g = int(a.grow_frac * total)
    if step >= g:
        return a.max_len
    L = a.min_len * (a.max_len / a.min_len) ** (step / g)
    return max(a.min_len, int(L) // 256 * 256)


def lr_at(step, total, a, start):
    if step < a.warmup:
        base = a.lr * (step + 1) / a.warmup
    else:
        p = (step - a.warmup) / max(1, total - a.warmup)
        base = a.lr * (a.min_lr_frac + (1 - a.min_lr_frac) * 0.5 * (1 + math.cos(math.pi * min(p, 1.0))))
    if start > 0 and step - start < a.rewarm:  # re-warm a rebuilt optimizer after resume
        base *= (step - start + 1) / a.rewarm
    return base


class Batches(torch.utils.data.Dataset):
    def __init__(self, gen, a, total):
        self.gen, self.a, self.total = gen, a, total

    def __len__(self):
        return self.total

    def __getitem__(self, step):
        L = seq_len(step, self.total, self.a)
        B = max(1, self.a.batch_tokens // L)
        rng = np.random.default_rng([self.a.seed, step])
        ids = np.empty((B, L), dtype=np.int64)
        w = np.empty((B, L), dtype=np.float32)
        kinds = np.empty(B, dtype=np.int64)
        for b in range(B):
            ids[b], w[b], k = self.gen.row(rng, L)
            kinds[b] = KIND_CODES[k]
        return torch.from_numpy(ids), torch.from_numpy(w), torch.from_numpy(kinds)


def loss_fn(model, ids, w, kinds=None):
    logits = model(ids[:, :-1])
    tgt, wt = ids[:, 1:], w[:, 1:]
    ce = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), tgt.reshape(-1), reduction="none").view_as(wt)
    loss = (ce * wt).sum() / wt.numel()
    stats = {}
    with torch.no_grad():
        m1 = wt == 1
        stats["lm"] = (ce[m1].sum() / m1.sum().clamp(min=1))
        ma = wt == tasks.ANSWER_WEIGHT
        if kinds is not None and ma.any():
            hit = (logits.argmax(-1) == tgt) | ~ma
            row_ok = hit.all(dim=1)  # all answer tokens of the row right (greedy-equivalent)
            has = ma.any(dim=1)
            for name, codes in (("pk", (1, 2)), ("mk", (3, 4))):
                sel = has & ((kinds == codes[0]) | (kinds == codes[1]))
                stats[name + "_acc"] = row_ok[sel].float().sum()
                stats[name + "_n"] = sel.sum()
            stats["ans_ce"] = ce[ma].mean()
    return loss, stats


def save_ckpt(model, step, total, a, outdir, tag="ckpt"):
    os.makedirs(outdir, exist_ok=True)
    sd = {k: v.detach().to(torch.bfloat16).cpu() for k, v in model.state_dict().items()
          if not (model.cfg.tie_word_embeddings and k == "lm_head.weight")}
    buf = io.BytesIO()
    torch.save(sd, buf)
    data = buf.getvalue()
    for old in glob.glob(os.path.join(outdir, tag + ".pt.part*")):
        os.remove(old)
    part = 15 * 1024 * 1024
    for i in range(0, len(data), part):
        with open(os.path.join(outdir, "%s.pt.part%d" % (tag, i // part)), "wb") as f:
            f.write(data[i:i + part])
    meta = dict(step=step, total_steps=total, config=model.cfg.to_dict(), args=vars(a))
    with open(os.path.join(outdir, tag + ".json"), "w") as f:
        json.dump(meta, f, indent=1)
    log("saved %s at step %d (%d bytes)" % (tag, step, len(data)))


def _parts(indir, name):
    ps = glob.glob(os.path.join(indir, name + ".part*"))
    if ps:
        ps = sorted(ps, key=lambda p: int(p.rsplit("part", 1)[1]))
        return b"".join(open(p, "rb").read() for p in ps)
    p = os.path.join(indir, name)
    return open(p, "rb").read() if os.path.exists(p) else None


def read_safetensors(data):
    """Minimal reader (the safetensors package is not in Debian 12)."""
    n = int.from_bytes(data[:8], "little")
    hdr = json.loads(data[8:8 + n])
    base = 8 + n
    dt = {"BF16": torch.bfloat16, "F32": torch.float32, "F16": torch.float16}
    out = {}
    for k, v in hdr.items():
        if k == "__metadata__":
            continue
        a, b = v["data_offsets"]
        out[k] = torch.frombuffer(bytearray(data[base + a:base + b]), dtype=dt[v["dtype"]]).view(v["shape"]).clone()
    return out


def load_ckpt(indir, tag="ckpt"):
    """Weights from ckpt.pt[.partN] (train.py) or model.safetensors[.partN] (export_hf.py),
    plus ckpt.json (step, total_steps, config, args)."""
    data = _parts(indir, tag + ".pt")
    if data is not None:
        sd = torch.load(io.BytesIO(data), map_location="cpu")
    else:
        sd = read_safetensors(_parts(indir, "model.safetensors"))
    meta = json.load(open(os.path.join(indir, tag + ".json")))
    return sd, meta


def benchmark(model, a, device, lens):
    """seconds per step (fwd+bwd at the training batch) at each length; leaves weights unchanged."""
    out = {}
    for L in lens:
        B = max(1, a.batch_tokens // L)
        ids = torch.randint(3, model.cfg.vocab_size, (B, L), device=device)
        w = torch.ones(B, L, device=device)
        ts = []
        for i in range(4):
            torch.cuda.synchronize()
            t = time.time()
            with torch.autocast("cuda", dtype=torch.bfloat16):
                loss, _ = loss_fn(model, ids, w)
            loss.backward()
            torch.cuda.synchronize()
            ts.append(time.time() - t)
        model.zero_grad(set_to_none=True)
        out[L] = float(np.median(ts[1:]))
        log("bench L=%5d B=%4d  %.1f ms/step  %.0f tok/s" % (L, B, out[L] * 1e3, B * L / out[L]))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=".data/carry")
    ap.add_argument("--out", required=True, help="folder for checkpoint + log")
    ap.add_argument("--resume", default=None, help="folder holding ckpt.pt.part* + ckpt.json")
    ap.add_argument("--init-from", default=None,
                    help="start a new schedule from the weights of a Hugging Face folder (model.safetensors), "
                         "e.g. models/adamas-tiny-8k to extend its context with a larger --max-len")
    ap.add_argument("--total-steps", type=int, default=0, help="0: choose from a benchmark and --train-seconds")
    ap.add_argument("--train-seconds", type=float, default=420)
    ap.add_argument("--deadline", type=float, default=1e9, help="stop (and save) at this many seconds after start")
    ap.add_argument("--save-every", type=float, default=150, help="seconds between checkpoints")
    ap.add_argument("--batch-tokens", type=int, default=65536)
    ap.add_argument("--min-len", type=int, default=256)
    ap.add_argument("--max-len", type=int, default=8192)
    ap.add_argument("--grow-frac", type=float, default=0.6)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--min-lr-frac", type=float, default=0.1)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--rewarm", type=int, default=50)
    ap.add_argument("--wd", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--log-every", type=int, default=10)
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--ffn", type=int, default=1024)
    ap.add_argument("--mix", default="", help="e.g. text=0.5,pk_rep=0.15,pk_real=0.1,mk_rep=0.1,mk_real=0.15")
    ap.add_argument("--smoke", action="store_true", help="CPU smoke test: tiny model, few steps")
    a = ap.parse_args()

    torch.manual_seed(a.seed)
    np.random.seed(a.seed)
    device = "cuda" if torch.cuda.is_available() and not a.smoke else "cpu"
    if device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    log("torch", torch.__version__, "device", torch.cuda.get_device_name() if device == "cuda" else "cpu")
    sp = spm.SentencePieceProcessor(model_file=os.path.join(a.data, "tokenizer.model"))
    tok = tasks.Tok(sp)
    tasks.selfcheck(tok, 10)
    log("template selfcheck ok")
    stream = load_stream(os.path.join(a.data, "train.u16.xz"))
    log("train stream: %d tokens" % len(stream))
    gen = tasks.Generator(tok, stream, mix={k: float(v) for k, v in (x.split("=") for x in a.mix.split(","))} if a.mix else None)
    log("mixture", gen.mix)

    cfg = Config(vocab_size=sp.vocab_size(), hidden_size=a.hidden, intermediate_size=a.ffn,
                 num_hidden_layers=a.layers, max_position_embeddings=a.max_len)
    if a.smoke:
        cfg = Config(vocab_size=sp.vocab_size(), hidden_size=256, intermediate_size=256, num_hidden_layers=2,
                     num_attention_heads=2, num_key_value_heads=1, head_dim=128, max_position_embeddings=a.max_len)
    model = LlamaLM(cfg)
    model.init_weights(a.seed)
    start = 0
    total = a.total_steps
    if a.init_from:
        assert not a.resume, "--init-from starts a new schedule; it cannot be combined with --resume"
        sd = read_safetensors(_parts(a.init_from, "model.safetensors"))
        missing, unexpected = model.load_state_dict({k: v.float() for k, v in sd.items()}, strict=False)
        assert not unexpected and all(m == "lm_head.weight" for m in missing), (missing, unexpected)
        log("initialised from %s (new schedule, max_len %d)" % (a.init_from, a.max_len))
    if a.resume:
        sd, meta = load_ckpt(a.resume)
        missing, unexpected = model.load_state_dict({k: v.float() for k, v in sd.items()}, strict=False)
        assert not unexpected and all(m == "lm_head.weight" for m in missing), (missing, unexpected)
        start, total = meta["step"], (a.total_steps or meta["total_steps"])
        log("resumed from %s at step %d of %d" % (a.resume, start, total))
    model.to(device)
    nparam = model.num_params()
    log("params %d (%.2f M), non-embedding %d" % (nparam, nparam / 1e6, nparam - cfg.vocab_size * cfg.hidden_size))

    if total == 0:
        if device == "cuda":
            lens = sorted({L for L in (256, 1024, 4096, 8192, 16384, 32768, 65536) if a.min_len <= L <= a.max_len}
                          | {a.min_len, a.max_len})
            t = benchmark(model, a, device, lens)
            xs = sorted(t)
            est = lambda L: float(np.interp(L, xs, [t[x] for x in xs]))
            cache = {}

            def per(T):  # estimated seconds for T steps (+4 % and 0.5 ms/step for logging etc.)
                if T not in cache:
                    g = max(1, int(a.grow_frac * T))
                    s = np.arange(T)
                    Ls = np.where(s >= g, a.max_len, np.maximum(a.min_len, (a.min_len * (a.max_len / a.min_len) ** (s / g)).astype(np.int64) // 256 * 256))
                    cache[T] = float(np.interp(Ls, xs, [t[x] for x in xs]).sum()) * 1.06 + 0.0005 * T
                return cache[T]
            lo, hi = 10, 40000
            while lo < hi:
                mid = (lo + hi + 1) // 2
                lo, hi = (mid, hi) if per(mid) <= a.train_seconds else (lo, mid - 1)
            total = lo
            log("auto total steps = %d (est. %.0f s for %.0f s budget)" % (total, per(total), a.train_seconds))
        else:
            total = 6

    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": a.wd}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=a.lr, betas=(0.9, 0.95), eps=1e-8, **({"fused": True} if device == "cuda" else {}))
    ds = Batches(gen, a, total)
    dl = torch.utils.data.DataLoader(ds, batch_size=None, sampler=range(start, total), num_workers=a.workers,
                                     pin_memory=(device == "cuda"), prefetch_factor=4 if a.workers else None)
    os.makedirs(a.out, exist_ok=True)
    logf = open(os.path.join(a.out, "train_log.csv"), "a")
    if start == 0:
        logf.write("step,seq_len,batch,lr,loss,lm_loss,ans_ce,pk_acc,mk_acc,tokens,elapsed_s,tok_per_s\n")
    tokens = sum(max(1, a.batch_tokens // seq_len(s, total, a)) * seq_len(s, total, a) for s in range(start))
    acc = {}
    last_save = time.time()
    t_log, tok_log = time.time(), 0
    step = start
    model.train()
    for ids, w, kinds in dl:
        ids, w, kinds = ids.to(device, non_blocking=True), w.to(device, non_blocking=True), kinds.to(device, non_blocking=True)
        lr = lr_at(step, total, a, start)
        for g in opt.param_groups:
            g["lr"] = lr
        with torch.autocast(device, dtype=torch.bfloat16, enabled=(device == "cuda")):
            loss, st = loss_fn(model, ids, w, kinds)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        step += 1
        n = ids.numel()
        tokens += n
        tok_log += n
        for k, v in st.items():
            acc[k] = acc.get(k, 0.0) + v.detach()
        acc["loss"] = acc.get("loss", 0.0) + loss.detach()
        acc["cnt"] = acc.get("cnt", 0) + 1
        if step % a.log_every == 0 or step == total:
            c = acc.pop("cnt")
            r = {k: float(v) for k, v in acc.items()}
            acc = {}
            el = time.time() - T0
            tps = tok_log / (time.time() - t_log)
            t_log, tok_log = time.time(), 0
            pk = r.get("pk_acc", 0) / max(r.get("pk_n", 0), 1)
            mk = r.get("mk_acc", 0) / max(r.get("mk_n", 0), 1)
            line = "%d,%d,%d,%.3e,%.4f,%.4f,%.4f,%.3f,%.3f,%d,%.1f,%.0f" % (
                step, ids.shape[1], ids.shape[0], lr, r["loss"] / c, r["lm"] / c, r.get("ans_ce", 0) / c, pk, mk,
                tokens, el, tps)
            logf.write(line + "\n")
            logf.flush()
            if step % (a.log_every * 5) == 0 or step == total or a.smoke:
                log("step %d/%d L=%d B=%d lr %.2e loss %.3f lm %.3f ans_ce %.3f pk %.2f (n=%d) mk %.2f (n=%d) tok %.1fM %.0f tok/s" % (
                    step, total, ids.shape[1], ids.shape[0], lr, r["loss"] / c, r["lm"] / c, r.get("ans_ce", 0) / c,
                    pk, r.get("pk_n", 0), mk, r.get("mk_n", 0), tokens / 1e6, tps))
        if time.time() - last_save > a.save_every and step < total:
            save_ckpt(model, step, total, a, a.out)
            last_save = time.time()
        if time.time() - T0 > a.deadline:
            log("deadline reached at step %d of %d" % (step, total))
            break
    save_ckpt(model, step, total, a, a.out)
    json.dump(dict(step=step, total_steps=total, tokens=tokens, params=nparam, wall_s=time.time() - T0,
                   finished=step >= total), open(os.path.join(a.out, "train_summary.json"), "w"), indent=1)
    log("done: step %d/%d, %.1fM tokens" % (step, total, tokens / 1e6))


if __name__ == "__main__":
    main()
