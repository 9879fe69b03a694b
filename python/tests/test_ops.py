"""The torch.ops.adamas operators against a pure-PyTorch reference of the method, CPU against
CUDA, CUDA graphs and torch.compile.

    PYTHONPATH=build-torch/python python3 -m unittest discover -s python/tests -v

Tolerances: selected indices and counts must match the reference exactly; attention outputs
(fp32 queries, so that the output is not rounded to 16 bits) within 2e-3 of the reference's
largest magnitude (max |out - ref| <= 2e-3 * max |ref|); with 16-bit queries the output is in
their dtype, so within one rounding of it (8e-3 for bfloat16, 1e-3 for float16).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import unittest

try:
    import torch
except ImportError:
    torch = None

SKIP_REASON = ""
if torch is None:
    SKIP_REASON = "torch is not installed"
elif tuple(int("".join(c for c in p if c.isdigit()) or 0) for p in torch.__version__.split(".")[:2]) < (2, 4):
    SKIP_REASON = f"torch {torch.__version__} is older than 2.4"
else:
    try:
        from adamas import ops  # loads the operator library
    except ImportError as e:
        SKIP_REASON = f"the adamas package or its operator library is missing: {e}"

requires_ops = unittest.skipUnless(not SKIP_REASON, SKIP_REASON)
HAVE_CUDA = not SKIP_REASON and torch.cuda.is_available()
requires_cuda = unittest.skipUnless(HAVE_CUDA, SKIP_REASON or "no CUDA device")

ATTENTION_RTOL = 2e-3
OUTPUT_RTOL = {"bfloat16": 8e-3, "float16": 1e-3, "float32": ATTENTION_RTOL}
THRESHOLDS = [-10.0, 0.0, 10.0]  # the library's 2-bit defaults (src/core/codes.cc)
KEY_STD = 8.0  # transformed elements then fall in all four buckets of THRESHOLDS


# ---- reference of the method (docs/method.md), in fp32 on the CPU -------------------------------


def hadamard(x: torch.Tensor) -> torch.Tensor:
    """Orthonormal Walsh-Hadamard transform of the last dimension, in float32, with the butterfly
    of src/cpu/hadamard_simd.cc: half-widths 1, 2, 4, ..., d/2, each (a, b) -> (a + b, a - b),
    then one multiplication by 1/sqrt(d) computed in float32 (so buckets match bit for bit)."""
    d = x.shape[-1]
    prefix = x.shape[:-1]
    h = 1
    while h < d:
        pairs = x.reshape(*prefix, d // (2 * h), 2, h)
        a, b = pairs[..., 0, :], pairs[..., 1, :]
        x = torch.stack((a + b, a - b), dim=-2).reshape(*prefix, d)
        h *= 2
    one = torch.tensor(1.0, dtype=torch.float32)
    return x * (one / torch.sqrt(torch.tensor(float(d), dtype=torch.float32)))


def buckets(x: torch.Tensor, thresholds: torch.Tensor) -> torch.Tensor:
    """Bucket of each element: how many thresholds are strictly below it."""
    return (x.unsqueeze(-1) > thresholds).sum(-1)


def select_reference(distances: torch.Tensor, length: int, budget: int) -> list[int]:
    """budget - 1 smallest distances among positions 0 .. length - 2 (ties to the lower position),
    ascending, then the current token length - 1; every position when budget >= length."""
    if budget >= length:
        return list(range(length))
    past = length - 1
    key = distances[:past].to(torch.int64) * past + torch.arange(past)  # unique: ties by position
    chosen = torch.argsort(key)[: budget - 1]
    return sorted(chosen.tolist()) + [past]


def attention_reference(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float) -> torch.Tensor:
    """softmax(q k^T scale) v in fp32; q [D], k/v [n, D]."""
    p = torch.softmax((k @ q) * scale, dim=0)
    return p @ v


# ---- a filled cache -------------------------------------------------------------------------


@dataclasses.dataclass
class Batch:
    """One layer's paged cache holding a ragged batch, and the K/V it was filled with."""

    k_cache: torch.Tensor
    v_cache: torch.Tensor
    codes: torch.Tensor
    thresholds: torch.Tensor
    page_indptr: torch.Tensor
    page_indices: torch.Tensor
    lengths: torch.Tensor
    max_length: int
    slots: torch.Tensor  # int32 global slot of every token, sequence by sequence
    keys: list  # per sequence [length, Hkv, D] as stored (rounded to the cache dtype), fp32, CPU
    values: list

    def to(self, device: str) -> "Batch":
        return dataclasses.replace(
            self,
            **{
                f.name: getattr(self, f.name).to(device)
                for f in dataclasses.fields(self)
                if isinstance(getattr(self, f.name), torch.Tensor)
            },
        )


def make_batch(lengths, num_kv_heads, head_dim, page_size, dtype, device, seed, bits=2, extra_pages=3):
    """Random K/V for each sequence, appended through append_kv into pages in a random order."""
    g = torch.Generator().manual_seed(seed)
    pages_per_seq = [math.ceil(n / page_size) for n in lengths]
    num_pages = sum(pages_per_seq) + extra_pages
    order = torch.randperm(num_pages, generator=g).tolist()
    indptr, indices, slots, keys, values = [0], [], [], [], []
    for n, p in zip(lengths, pages_per_seq):
        pages = order[len(indices) : len(indices) + p]
        indices += pages
        indptr.append(len(indices))
        slots += [pages[t // page_size] * page_size + t % page_size for t in range(n)]
        keys.append(torch.randn(n, num_kv_heads, head_dim, generator=g) * KEY_STD)
        values.append(torch.randn(n, num_kv_heads, head_dim, generator=g))
    words = ops.code_page_words(bits, head_dim, page_size)
    thresholds = torch.zeros(num_kv_heads, 7)
    thresholds[:, :3] = torch.tensor(THRESHOLDS)
    batch = Batch(
        k_cache=torch.zeros(num_kv_heads, num_pages, page_size, head_dim, dtype=dtype, device=device),
        v_cache=torch.zeros(num_kv_heads, num_pages, page_size, head_dim, dtype=dtype, device=device),
        codes=torch.zeros(num_kv_heads, num_pages, words, dtype=torch.int64, device=device),
        thresholds=thresholds.to(device),
        page_indptr=torch.tensor(indptr, dtype=torch.int32, device=device),
        page_indices=torch.tensor(indices, dtype=torch.int32, device=device),
        lengths=torch.tensor(lengths, dtype=torch.int32, device=device),
        max_length=max(lengths),
        slots=torch.tensor(slots, dtype=torch.int32, device=device),
        keys=[k.to(dtype).float() for k in keys],
        values=[v.to(dtype).float() for v in values],
    )
    ops.append_kv(
        batch.k_cache,
        batch.v_cache,
        batch.codes,
        batch.thresholds,
        torch.cat(keys).to(device),
        torch.cat(values).to(device),
        batch.slots,
        True,
    )
    return batch


def reference_distances(batch: Batch, q: torch.Tensor) -> list:
    """Per sequence [Hq, length] L1 distances between query and key codes (CPU)."""
    thresholds = torch.tensor(THRESHOLDS)
    q = q.float().cpu()
    group = q.shape[1] // batch.keys[0].shape[1]
    out = []
    for b, k in enumerate(batch.keys):
        kb = buckets(hadamard(k), thresholds)  # [n, Hkv, D]
        qb = buckets(hadamard(q[b]), thresholds)  # [Hq, D]
        kb = kb.repeat_interleave(group, dim=1).transpose(0, 1)  # [Hq, n, D]
        out.append((qb[:, None, :] - kb).abs().sum(-1))
    return out


def reference_selection(batch, distances, budget, shared, num_kv_heads):
    """Rows of the reference selection, as select() lays them out."""
    rows = []
    for b, d in enumerate(distances):
        n = batch.keys[b].shape[0]
        if shared:
            group = d.shape[0] // num_kv_heads
            d = d.view(num_kv_heads, group, -1).sum(1)
        rows += [select_reference(d[r], n, budget) for r in range(d.shape[0])]
    return rows


def reference_output(batch, q, rows, shared, scale):
    """[B, Hq, D] fp32 attention of each query head over its row of the selection."""
    q = q.float().cpu()
    batch_size, hq, _ = q.shape
    hkv = batch.keys[0].shape[1]
    group = hq // hkv
    out = torch.empty(q.shape)
    for b in range(batch_size):
        for h in range(hq):
            j = h // group
            row = rows[b * hkv + j] if shared else rows[b * hq + h]
            k = batch.keys[b][row, j]
            v = batch.values[b][row, j]
            out[b, h] = attention_reference(q[b, h], k, v, scale)
    return out


def selection_rows(indices, counts):
    return [indices[r, : counts[r]].tolist() for r in range(indices.shape[0])]


def assert_close_relative(test, out, ref, rtol, what):
    err = (out.float().cpu() - ref).abs().max().item()
    bound = rtol * ref.abs().max().item()
    test.assertLessEqual(err, bound, f"{what}: max error {err:.3g} > {rtol} x max |ref|")


def devices():
    return ["cpu", "cuda"] if HAVE_CUDA else ["cpu"]


def workspace_for(batch, num_q_heads, policy):
    nbytes = ops.workspace_bytes(
        batch.k_cache,
        batch.codes,
        batch.thresholds,
        num_q_heads,
        batch.lengths.numel(),
        batch.max_length,
        policy,
    )
    return ops.new_workspace(nbytes, batch.k_cache.device)


# ---- (a) the ops against the reference -------------------------------------------------------


@requires_ops
class ReferenceTest(unittest.TestCase):
    # Ragged batches: a 1-token sequence, lengths off page boundaries, an exact page multiple.
    LENGTHS = ([1], [37, 16], [150, 5, 64])
    BUDGETS = (1, 8, 33, 100000)

    def test_matches_reference(self):
        seed = 0
        for device, dtype, head_dim, page_size, group in itertools.product(
            devices(), (torch.float16, torch.bfloat16), (64, 128), (16, 13), (1, 4)
        ):
            seed += 1
            lengths = self.LENGTHS[seed % len(self.LENGTHS)]
            with self.subTest(
                device=device,
                dtype=dtype,
                head_dim=head_dim,
                page_size=page_size,
                group=group,
                lengths=lengths,
            ):
                self.check_case(device, dtype, head_dim, page_size, group, lengths, seed)

    def test_float32_cache_on_cpu(self):
        self.check_case("cpu", torch.float32, 64, 16, 4, [150, 5, 64], seed=99)

    def check_case(self, device, dtype, head_dim, page_size, group, lengths, seed):
        hkv = 2
        hq = hkv * group
        batch = make_batch(lengths, hkv, head_dim, page_size, dtype, device, seed)
        g = torch.Generator().manual_seed(seed + 1000)
        q = (torch.randn(len(lengths), hq, head_dim, generator=g) * KEY_STD).to(device)
        scale = 2.0 / (KEY_STD * KEY_STD * math.sqrt(head_dim))  # logits of std ~2
        distances = reference_distances(batch, q)
        for budget, shared in itertools.product(self.BUDGETS, (False, True) if group > 1 else (False,)):
            policy = f"adamas:budget={budget}" + (",gqa=shared" if shared else "")
            workspace = workspace_for(batch, hq, policy)
            indices, counts = ops.select(
                q,
                batch.k_cache,
                batch.codes,
                batch.thresholds,
                batch.page_indptr,
                batch.page_indices,
                batch.lengths,
                batch.max_length,
                policy,
                workspace,
            )
            rows = reference_selection(batch, distances, budget, shared, hkv)
            self.assertEqual(indices.dtype, torch.int32)
            self.assertEqual(tuple(indices.shape), (len(rows), min(budget, batch.max_length)))
            self.assertEqual(selection_rows(indices.cpu(), counts.cpu()), rows, policy)
            ref = reference_output(batch, q, rows, shared, scale)
            sparse = ops.sparse_attention(
                q,
                batch.k_cache,
                batch.v_cache,
                batch.page_indptr,
                batch.page_indices,
                batch.lengths,
                batch.max_length,
                indices,
                counts,
                shared,
                scale,
                workspace,
            )
            assert_close_relative(self, sparse, ref, ATTENTION_RTOL, f"sparse_attention {policy}")
            fused = ops.decode(
                q,
                batch.k_cache,
                batch.v_cache,
                batch.codes,
                batch.thresholds,
                batch.page_indptr,
                batch.page_indices,
                batch.lengths,
                batch.max_length,
                policy,
                scale,
                workspace,
            )
            assert_close_relative(self, fused, ref, ATTENTION_RTOL, f"decode {policy}")
            # Queries in the cache dtype: the output comes back in that dtype.
            q16 = q.to(dtype)
            out16 = ops.decode(
                q16,
                batch.k_cache,
                batch.v_cache,
                batch.codes,
                batch.thresholds,
                batch.page_indptr,
                batch.page_indices,
                batch.lengths,
                batch.max_length,
                policy,
                scale,
                workspace,
            )
            self.assertEqual(out16.dtype, dtype)
            ref16 = reference_output(
                batch,
                q16,
                reference_selection(batch, reference_distances(batch, q16), budget, shared, hkv),
                shared,
                scale,
            )
            assert_close_relative(
                self,
                out16,
                ref16,
                OUTPUT_RTOL[str(dtype).removeprefix("torch.")],
                f"decode {policy}, {dtype} queries",
            )

    def test_dense_attention_matches_reference(self):
        for device in devices():
            batch = make_batch([150, 5, 64], 2, 128, 16, torch.bfloat16, device, seed=7)
            q = torch.randn(3, 8, 128, generator=torch.Generator().manual_seed(8)).to(device)
            scale = 1.0 / (KEY_STD * math.sqrt(128))
            out = ops.dense_attention(
                q,
                batch.k_cache,
                batch.v_cache,
                batch.page_indptr,
                batch.page_indices,
                batch.lengths,
                batch.max_length,
                scale,
                workspace_for(batch, 8, "full"),
            )
            rows = [list(range(n)) for n in (150, 5, 64) for _ in range(8)]
            assert_close_relative(
                self,
                out,
                reference_output(batch, q, rows, False, scale),
                ATTENTION_RTOL,
                f"dense_attention on {device}",
            )


# ---- (b) CUDA against CPU on the same bytes --------------------------------------------------


@requires_cuda
class CudaMatchesCpuTest(unittest.TestCase):
    def test_same_codes_selection_and_output(self):
        for dtype, head_dim, page_size in itertools.product(
            (torch.float16, torch.bfloat16), (64, 128), (16, 13)
        ):
            with self.subTest(dtype=dtype, head_dim=head_dim, page_size=page_size):
                lengths = [300, 1, 77]
                cpu = make_batch(lengths, 2, head_dim, page_size, dtype, "cpu", seed=head_dim + page_size)
                gpu = make_batch(lengths, 2, head_dim, page_size, dtype, "cuda", seed=head_dim + page_size)
                self.assertTrue(torch.equal(cpu.k_cache, gpu.k_cache.cpu()), "k_cache")
                self.assertTrue(torch.equal(cpu.v_cache, gpu.v_cache.cpu()), "v_cache")
                # Codes of every written slot: pages are [bits][words][slot_stride] int64.
                stride = math.ceil(page_size / 8) * 8
                pages, slots = cpu.slots.long() // page_size, cpu.slots.long() % page_size

                def written(codes):
                    c = codes.cpu().view(codes.shape[0], codes.shape[1], -1, stride)
                    return c[:, pages, :, slots]

                self.assertTrue(torch.equal(written(cpu.codes), written(gpu.codes)), "codes")
                q = torch.randn(3, 8, head_dim, generator=torch.Generator().manual_seed(1)) * KEY_STD
                for policy in (
                    "adamas:budget=40",
                    "adamas:budget=40,gqa=shared",
                    "adamas:budget=64,bits=2,dist=l2",
                ):
                    results = []
                    for batch in (cpu, gpu):
                        ws = workspace_for(batch, 8, policy)
                        args = (batch.page_indptr, batch.page_indices, batch.lengths, batch.max_length)
                        qd = q.to(batch.k_cache.device)
                        indices, counts = ops.select(
                            qd, batch.k_cache, batch.codes, batch.thresholds, *args, policy, ws
                        )
                        out = ops.decode(
                            qd,
                            batch.k_cache,
                            batch.v_cache,
                            batch.codes,
                            batch.thresholds,
                            *args,
                            policy,
                            0.0,
                            ws,
                        )
                        results.append((selection_rows(indices.cpu(), counts.cpu()), out.cpu()))
                    self.assertEqual(results[0][0], results[1][0], f"indices, {policy}")
                    assert_close_relative(
                        self, results[1][1], results[0][1], ATTENTION_RTOL, f"decode {policy}"
                    )


# ---- the fused decode step -------------------------------------------------------------------


@requires_ops
class DecodeStepTest(unittest.TestCase):
    def test_decode_step_is_append_then_decode(self):
        """Each sequence's last token is erased from a copy of the pools (K/V and its code words);
        decode_step writes it back and attends: pools and output equal append_kv + decode."""
        for device, policy in itertools.product(devices(), ("adamas:budget=16", "full")):
            with self.subTest(device=device, policy=policy):
                batch = make_batch([40, 17, 1], 2, 64, 16, torch.bfloat16, device, seed=11)
                q = torch.randn(3, 8, 64, generator=torch.Generator().manual_seed(12)).to(device, torch.bfloat16)
                tables = (batch.page_indptr, batch.page_indices, batch.lengths, batch.max_length)
                want = ops.decode(q, batch.k_cache, batch.v_cache, batch.codes, batch.thresholds, *tables,
                                  policy, 0.0, workspace_for(batch, 8, policy))
                last = torch.cumsum(batch.lengths.cpu(), 0) - 1  # each sequence's last token
                slots = batch.slots.cpu()[last].to(torch.int32)
                k_new = torch.stack([k[-1] for k in batch.keys]).to(device)
                v_new = torch.stack([v[-1] for v in batch.values]).to(device)
                k, v, codes = batch.k_cache.clone(), batch.v_cache.clone(), batch.codes.clone()
                page, slot = (slots // 16).long(), (slots % 16).long()
                k[:, page, slot] = 0
                v[:, page, slot] = 0
                stride = 16  # code slot stride of 16-token pages
                for w in range(codes.shape[2] // stride):
                    codes[:, page, w * stride + slot] = 0
                got = ops.decode_step(q, k_new.to(torch.bfloat16), v_new.to(torch.bfloat16),
                                      slots.to(device), k, v, codes, batch.thresholds, *tables, policy,
                                      0.0, workspace_for(batch, 8, policy))
                self.assertTrue(torch.equal(k, batch.k_cache) and torch.equal(v, batch.v_cache), "K/V")
                self.assertTrue(torch.equal(codes, batch.codes), "codes")
                self.assertTrue(torch.equal(got, want), "output")


# ---- (c) budget >= length is dense attention -------------------------------------------------


@requires_ops
class DenseEquivalenceTest(unittest.TestCase):
    def test_decode_with_large_budget_is_dense(self):
        for device in devices():
            batch = make_batch([200, 3, 50], 2, 128, 16, torch.bfloat16, device, seed=3)
            q = torch.randn(3, 8, 128, generator=torch.Generator().manual_seed(4)).to(device, torch.bfloat16)
            args = (batch.page_indptr, batch.page_indices, batch.lengths, batch.max_length)
            dense = ops.dense_attention(
                q, batch.k_cache, batch.v_cache, *args, 0.0, workspace_for(batch, 8, "full")
            )
            for policy in ("full", f"adamas:budget={batch.max_length}", "adamas:budget=100000,gqa=shared"):
                with self.subTest(device=device, policy=policy):
                    out = ops.decode(
                        q,
                        batch.k_cache,
                        batch.v_cache,
                        batch.codes,
                        batch.thresholds,
                        *args,
                        policy,
                        0.0,
                        workspace_for(batch, 8, policy),
                    )
                    if device == "cpu" or policy == "full":
                        self.assertTrue(torch.equal(out, dense), f"decode({policy}) differs from dense_attention")
                    else:
                        # The GPU's sparse kernel over every position: dense up to fp32 summation
                        # order, so up to one bfloat16 rounding step apart.
                        torch.testing.assert_close(out.float(), dense.float(), rtol=1.6e-2, atol=1e-3)


# ---- (d) bad inputs ----------------------------------------------------------------------------


@requires_ops
class BadInputTest(unittest.TestCase):
    def setUp(self):
        self.batch = make_batch([20, 9], 2, 64, 16, torch.float16, "cpu", seed=5)
        self.q = torch.randn(2, 4, 64)
        self.ws = workspace_for(self.batch, 4, "adamas:budget=8")

    def decode(self, **override):
        b = self.batch
        args = dict(
            q=self.q,
            k_cache=b.k_cache,
            v_cache=b.v_cache,
            codes=b.codes,
            thresholds=b.thresholds,
            page_indptr=b.page_indptr,
            page_indices=b.page_indices,
            lengths=b.lengths,
            max_length=b.max_length,
            policy="adamas:budget=8",
            scale=0.0,
            workspace=self.ws,
        )
        args.update(override)
        return ops.decode(**args)

    def test_errors_name_the_argument(self):
        b = self.batch
        cases = {
            "k_cache": dict(k_cache=b.k_cache.to(torch.int32), v_cache=b.v_cache.to(torch.int32)),
            "v_cache": dict(v_cache=b.v_cache[:, :, :, :32].contiguous()),
            "codes": dict(codes=b.codes.to(torch.int32)),
            "thresholds": dict(thresholds=b.thresholds[:, :3].contiguous()),
            "q": dict(q=torch.randn(2, 4, 32)),
            "lengths": dict(lengths=b.lengths.long()),
            "page_indptr": dict(page_indptr=b.page_indptr[:2].contiguous()),
            "policy": dict(policy="adamas:budget=8,colour=blue"),
        }
        for name, override in cases.items():
            with self.subTest(argument=name):
                with self.assertRaisesRegex(RuntimeError, name):
                    self.decode(**override)

    def test_append_kv_checks_slots(self):
        b = self.batch
        k = torch.randn(1, 2, 64)
        outside = torch.tensor([b.k_cache.shape[1] * 16], dtype=torch.int32)
        with self.assertRaisesRegex(RuntimeError, "slots"):
            ops.append_kv(b.k_cache, b.v_cache, b.codes, b.thresholds, k, k, outside, True)

    @requires_cuda
    def test_query_on_another_device(self):
        batch = self.batch.to("cuda")
        policy = "adamas:budget=8"
        ws = ops.new_workspace(
            ops.workspace_bytes(batch.k_cache, batch.codes, batch.thresholds, 4, 2, batch.max_length, policy),
            "cuda",
        )
        with self.assertRaisesRegex(RuntimeError, "q is on cpu"):
            ops.decode(self.q, batch.k_cache, batch.v_cache, batch.codes, batch.thresholds,
                       batch.page_indptr, batch.page_indices, batch.lengths, batch.max_length, policy, 0.0, ws)

    @requires_cuda
    def test_small_workspace_on_cuda(self):
        batch = self.batch.to("cuda")
        policy = "adamas:budget=8"
        needed = ops.workspace_bytes(
            batch.k_cache, batch.codes, batch.thresholds, 4, 2, batch.max_length, policy
        )
        self.assertGreater(needed, 1)
        small = ops.new_workspace(needed - 1, "cuda")
        with self.assertRaisesRegex(RuntimeError, "workspace"):
            ops.decode(
                self.q.cuda(),
                batch.k_cache,
                batch.v_cache,
                batch.codes,
                batch.thresholds,
                batch.page_indptr,
                batch.page_indices,
                batch.lengths,
                batch.max_length,
                policy,
                0.0,
                small,
            )


# ---- (e) CUDA graphs ----------------------------------------------------------------------------


@requires_cuda
class CudaGraphTest(unittest.TestCase):
    def test_replay_after_lengths_change(self):
        # Pages for up to 160 tokens per sequence; the graph is captured for max_length 160 with
        # shorter sequences, then replayed after their lengths grow in place.
        capacity, policy = 160, "adamas:budget=32"
        full = make_batch([capacity, capacity], 2, 128, 16, torch.bfloat16, "cuda", seed=11)
        lengths = torch.tensor([40, 90], dtype=torch.int32, device="cuda")
        q = torch.randn(2, 8, 128, device="cuda", dtype=torch.bfloat16)
        ws = workspace_for(full, 8, policy)
        args = (full.page_indptr, full.page_indices, lengths, capacity, policy, 0.0, ws)

        def step():
            return ops.decode(q, full.k_cache, full.v_cache, full.codes, full.thresholds, *args)

        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            step()  # warm-up outside the capture
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            out = step()
        for new_lengths in ([41, 91], [100, 7], [160, 160]):
            lengths.copy_(torch.tensor(new_lengths, dtype=torch.int32))
            q.copy_(torch.randn_like(q))
            graph.replay()
            eager = step()
            torch.cuda.synchronize()
            self.assertTrue(torch.equal(out, eager), f"replay differs from eager at lengths {new_lengths}")


# ---- (f) torch.compile ----------------------------------------------------------------------------


@requires_ops
class CompileTest(unittest.TestCase):
    def test_fullgraph(self):
        device = "cuda" if HAVE_CUDA else "cpu"
        # inductor on the GPU; on the CPU aot_eager, which traces the same fakes and
        # functionalization without needing a C++ compiler for generated code.
        backend = "inductor" if HAVE_CUDA else "aot_eager"
        batch = make_batch([70, 33], 2, 64, 16, torch.float16, device, seed=13)
        policy = "adamas:budget=16"
        ws = workspace_for(batch, 8, policy)
        q = torch.randn(2, 8, 64, device=device, dtype=torch.float16)

        def step(q, ws):
            tables = (batch.page_indptr, batch.page_indices, batch.lengths, batch.max_length)
            out = torch.ops.adamas.decode(
                q, batch.k_cache, batch.v_cache, batch.codes, batch.thresholds, *tables, policy, 0.0, ws
            )
            indices, counts = torch.ops.adamas.select(
                q, batch.k_cache, batch.codes, batch.thresholds, *tables, policy, ws
            )
            sparse = torch.ops.adamas.sparse_attention(
                q, batch.k_cache, batch.v_cache, *tables, indices, counts, False, 0.0, ws
            )
            return out * 2, sparse, indices, counts

        compiled = torch.compile(step, fullgraph=True, backend=backend)
        got, want = compiled(q, ws), step(q, ws)
        self.assertTrue(torch.equal(got[0], want[0]))
        for g, w in zip(got[1:], want[1:]):
            self.assertTrue(torch.equal(g, w))


if __name__ == "__main__":
    unittest.main()
