"""AdamasCache: a paged KV cache for Hugging Face transformers whose decode steps run the Adamas
operators (select + sparse attention over 2-bit Hadamard key codes).

transformers API facts this module relies on (transformers 5.x; read in the public sources of
huggingface/transformers, v4.57-era and v5.1x versions of each file):

* cache_utils.py, ``Cache.__init__(layers=None, layer_class_to_replicate=None, offloading=False,
  offload_only_non_sliding=True)`` raises unless exactly one of ``layers`` /
  ``layer_class_to_replicate`` is given; the base class's methods and properties (``__len__``,
  ``reset``, ``crop``, ``batch_size``, ``is_initialized``, ``is_sliding``, ``is_compileable``,
  ``early_initialization`` ...) iterate ``self.layers``. We pass ``layers=[]`` and override
  every one of them that a model or ``generate()`` reaches.
* ``Cache.update(key_states, value_states, layer_idx, *args, **kwargs) -> (keys, values)``: the
  attention computes over what ``update`` returns. Before 5.14 the attention layer passes a
  ``cache_kwargs`` dict (``cache_position``, ``sin``, ``cos``) as 4th argument; from 5.14 on,
  ``LlamaAttention.forward`` calls ``past_key_values.update(key_states, value_states,
  self.layer_idx)``. States are ``[batch, num_kv_heads, q_len, head_dim]``, after RoPE.
* ``get_seq_length(layer_idx=0) -> int``: tokens seen, used for positions and masks.
* ``get_mask_sizes``: until 5.13 ``(cache_position: Tensor, layer_idx)``, from 5.14
  ``(query_length: int, layer_idx)``; returns ``(kv_length, kv_offset)``, for a growing
  full-attention layer ``(seen + query_length, 0)`` (``DynamicLayer.get_mask_sizes``).
* masking_utils.py ``_preprocess_mask_arguments`` (5.14+): ``q_offset =
  past_key_values.get_query_offset(layer_idx)`` and ``kv_length, kv_offset =
  past_key_values.get_mask_sizes(q_length, layer_idx)``; and it returns NO mask at all when
  ``config._attn_implementation`` is not registered in ``ALL_MASK_ATTENTION_FUNCTIONS``, which is
  why :func:`adamas.register` registers ``sdpa_mask`` under "adamas". ``sdpa_mask`` returns a
  boolean ``[B, 1, q_len, kv_len]`` mask (True: attend) or None when ``is_causal`` suffices.
* ``get_max_length(layer_idx=None) -> int`` (-1: no maximum) replaces ``get_max_cache_shape``
  (deprecated, "removed in 5.16"); we define both.
* ``crop(n)`` (5.17, ``DynamicLayer.crop``): ``n < 0`` removes ``-n`` tokens, ``n > 0`` is the
  deprecated absolute new length (until 5.18), ``n == 0`` does nothing.
* ``is_compileable``: ``generate()`` compiles the forward automatically only for compileable
  caches; ``batch_repeat_interleave`` / ``batch_select_indices`` / ``reorder_cache`` serve beam
  search, ``num_return_sequences > 1`` expansion of a filled cache and contrastive search.
* integrations/sdpa_attention.py ``sdpa_attention_forward(module, query, key, value,
  attention_mask, dropout=0.0, scaling=None, is_causal=None, **kwargs)`` returns
  ``(out.transpose(1, 2).contiguous(), None)``: ``[B, q_len, num_heads, head_dim]``.
* models/llama/modeling_llama.py: ``attention_interface(self, query, key, value, attention_mask,
  dropout=..., scaling=self.scaling, **kwargs)``; ``past_key_values`` is a named parameter of the
  attention module's forward, so it is NOT in ``kwargs``: the attention function reaches the
  cache through a context variable set by ``update`` (attention.py). Mistral and Qwen2 also pass
  ``sliding_window=``.
* generation/utils.py: a ``Cache`` passed as ``past_key_values`` is used as is (a
  ``cache_implementation`` in the generation config alongside it is an error); left padding is
  what ``generate()`` produces for decoder-only models, with position ids from the 2-D mask.

Design. K/V live in per-layer paged pools ``[num_kv_heads, num_pages, page_size, head_dim]`` with
key codes beside them; one page table per sequence serves every layer (Python page allocator).
``update`` stores nothing: on a prefill (more than one new token) it returns past + new K/V so that
transformers' SDPA runs the prefill, on a decode step it returns the new token's K/V. The
attention function (attention.py) then appends the new tokens to the pools (padding skipped, so
each sequence's stored length counts its real tokens) and, on decode steps, runs
``torch.ops.adamas.decode`` on the pools. The model sees a padded length (``get_seq_length``)
separate from each sequence's real length. Per-step tables (page tables, lengths, slots) are
built once per step, at the step's first layer, and reused by the others.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import torch
from transformers import Cache

from . import ops
from ._pending import set_pending, take_pending
from .policy import MAX_THRESHOLDS, Policy, default_thresholds, parse_policy

__all__ = ["AdamasCache"]

_MAX_PAGE_SIZE = 4096  # CacheConfig::validate (src/cache/cache_config.cc)
_INT32_MAX = 2**31 - 1  # global slots are int32


@dataclasses.dataclass
class _LayerPool:
    k: torch.Tensor  # [num_kv_heads, num_pages, page_size, head_dim]
    v: torch.Tensor
    codes: torch.Tensor  # [num_kv_heads, num_pages, code_page_words] int64
    thresholds: torch.Tensor  # [num_kv_heads, 7] float32

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.k, self.v, self.codes, self.thresholds))


@dataclasses.dataclass
class _Step:
    """One forward pass through the model: the same new tokens for every layer."""

    q_len: int
    past_lengths: list[int]  # real tokens per sequence before this step
    last_layer: int = -1  # highest layer whose update() ran in this step
    updated: set[int] = dataclasses.field(default_factory=set)
    appended: set[int] = dataclasses.field(default_factory=set)
    # Prefill with a past: [B, padded past length] global slots of the past tokens, right-aligned under
    # the left padding, -1 at padding (device, int64).
    past_slots: torch.Tensor | None = None
    # Built at the step's first attention call (_build):
    built: bool = False
    token_index: torch.Tensor | None = None  # rows of the flattened [B * q_len] new tokens that are real
    slots: torch.Tensor | None = None  # int32 [n] global slots of the real new tokens
    lengths: torch.Tensor | None = None  # int32 [B] after this step
    max_length: int = 0

    @property
    def decode(self) -> bool:
        return self.q_len == 1


class AdamasCache(Cache):
    """Paged KV cache whose decode steps attend to the ``budget`` keys the Adamas estimate ranks
    highest (``attn_implementation="adamas"``; see :func:`adamas.register`).

    Args:
        policy: ``"adamas[:budget=N,bits=..,dist=l1|l2,gqa=per-head|shared,hadamard=0|1,
            dense_layers=N]"`` or ``"full"``. Layers below ``dense_layers`` (default 2, the
            paper's) decode densely; prefill is always dense (transformers' SDPA).
        page_size: tokens per page (1..4096).
        max_tokens: pool capacity in tokens, all sequences together, allocated on first use;
            None (or when exceeded): the pools grow by reallocation, doubling.
        config: the model config; optional, it only tells the number of layers up front.
        kv_dtype: dtype of the stored K/V. None: the model's dtype, except that a float32 model
            on CUDA stores float16 (the GPU kernels read float16 and bfloat16).

    Works with batches of left-padded sequences (what ``generate()`` makes); beam search and
    other batch reordering are not supported. Not compileable (``is_compileable = False``).
    """

    is_compileable = False

    def __init__(
        self,
        policy: str = "adamas:budget=256",
        page_size: int = 16,
        max_tokens: int | None = None,
        config=None,
        kv_dtype: torch.dtype | None = None,
    ):
        super().__init__(layers=[])
        self.policy: Policy = parse_policy(policy)
        if not 1 <= page_size <= _MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be in [1, {_MAX_PAGE_SIZE}], got {page_size}")
        if max_tokens is not None and max_tokens < 1:
            raise ValueError(f"max_tokens must be ≥ 1 or None, got {max_tokens}")
        if kv_dtype not in (None, torch.float16, torch.bfloat16, torch.float32):
            raise ValueError(f"kv_dtype must be float16, bfloat16, float32 or None, got {kv_dtype}")
        self.page_size = page_size
        self.max_tokens = max_tokens
        self.kv_dtype = kv_dtype
        self._num_layers = config.get_text_config(decoder=True).num_hidden_layers if config is not None else 0
        self._pools: list[_LayerPool | None] = []
        self._num_pages = 0  # pool capacity (every layer's)
        self._free: list[int] = []  # free page ids, a stack: low ids first
        self._pages: list[list[int]] = []  # page table of each sequence, shared by all layers
        self._lengths: list[int] = []  # real (stored) tokens of each sequence
        self._seen = 0  # padded length the model sees
        self._device: torch.device | None = None
        self._step: _Step | None = None
        self._tables: tuple[torch.Tensor, torch.Tensor] | None = None  # device page_indptr, page_indices
        self._workspace: torch.Tensor | None = None
        self._workspace_plan = (
            0,
            0,
            0,
            0,
        )  # (num_q_heads, max_batch, max_length, num_pages) it was sized for

    # ---- what transformers asks -------------------------------------------------------------

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, layer_idx: int, *args, **kwargs):
        """Returns the K/V the attention of ``layer_idx`` computes over (see the module doc); stores
        nothing: the "adamas" attention function appends the new tokens."""
        if self._step is None or layer_idx <= self._step.last_layer:
            self._begin_step(key_states)
        step = self._step
        step.last_layer = layer_idx
        step.updated.add(layer_idx)
        self._num_layers = max(self._num_layers, layer_idx + 1)
        set_pending(self, layer_idx)
        if step.past_slots is None:  # a decode step, or a prefill with nothing before it
            return key_states, value_states
        past_k, past_v = self._gather_past(layer_idx, step.past_slots, key_states.dtype)
        return torch.cat([past_k, key_states], dim=-2), torch.cat([past_v, value_states], dim=-2)

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return self._seen

    def get_query_offset(self, layer_idx: int = 0) -> int:
        return self._seen

    def get_mask_sizes(self, query_length: int | torch.Tensor, layer_idx: int = 0) -> tuple[int, int]:
        # transformers < 5.14 passes cache_position (a tensor of the new positions), later the
        # query length.
        if isinstance(query_length, torch.Tensor):
            query_length = query_length.shape[0]
        return self._seen + query_length, 0

    def get_max_length(self, layer_idx: int | None = None) -> int:
        return -1  # the pools grow

    def get_max_cache_shape(self, layer_idx: int = 0) -> int:
        return -1

    def __len__(self) -> int:
        return self._num_layers

    @property
    def batch_size(self) -> int:
        return len(self._lengths) if self._lengths else -1

    @property
    def is_initialized(self) -> bool:
        return any(pool is not None for pool in self._pools)

    @property
    def is_sliding(self) -> list[bool]:
        return [False] * self._num_layers

    @property
    def is_linear(self) -> list[bool]:
        return [False] * self._num_layers

    def early_initialization(self, *args, **kwargs) -> None:
        """Nothing to do: the pools are shaped by the first update."""

    def reset(self) -> None:
        """Forgets every sequence; the pools and the workspace stay allocated for reuse."""
        self._free = list(range(self._num_pages - 1, -1, -1))
        self._pages, self._lengths = [], []
        self._seen = 0
        self._step = None
        self._tables = None

    def crop(self, length: int) -> None:
        """Removes tokens from the end of every sequence (their pages are freed).

        ``length < 0``: remove ``-length`` tokens; ``length > 0``: keep the first ``length`` of the
        padded length (the older convention); ``0``: nothing (transformers 5.17's ``crop``).
        """
        if length == 0:
            return
        new_seen = max(0, self._seen + length) if length < 0 else min(length, self._seen)
        removed = self._seen - new_seen
        if removed == 0:
            return
        # Left padding: the last `removed` positions of the padded layout are real tokens of
        # every sequence (unless a sequence is shorter).
        for b, length_b in enumerate(self._lengths):
            self._lengths[b] = max(0, length_b - removed)
            keep = math.ceil(self._lengths[b] / self.page_size)
            self._free.extend(reversed(self._pages[b][keep:]))
            del self._pages[b][keep:]
        self._seen = new_seen
        self._step = None
        self._tables = None

    def _no_reorder(self, what: str):
        raise NotImplementedError(
            f"AdamasCache does not support {what} (beam search, contrastive search or "
            "num_return_sequences > 1 on a filled cache); decode with greedy or sampling "
            "generation, one sequence per prompt"
        )

    def reorder_cache(self, beam_idx: torch.Tensor) -> None:
        self._no_reorder("reorder_cache")

    def batch_repeat_interleave(self, repeats: int) -> None:
        self._no_reorder("batch_repeat_interleave")

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        self._no_reorder("batch_select_indices")

    # ---- for callers outside a model forward --------------------------------------------------

    def extend(self, key_states: torch.Tensor, value_states: torch.Tensor, layer_idx: int) -> None:
        """Stores ``[B, num_kv_heads, n, head_dim]`` tokens of layer ``layer_idx`` without running
        attention (e.g. K/V of a prefill computed elsewhere). Call it for layers 0, 1, ... with
        the same ``n``, as a forward pass would; no padding."""
        self.update(key_states, value_states, layer_idx)
        take_pending(layer_idx)
        self._append(layer_idx, key_states, value_states, attention_mask=None)

    def stats(self) -> dict:
        """Policy, sequences, pages and bytes: allocated (pools of every layer + workspace) and
        holding tokens (pages in use)."""
        pools = [p for p in self._pools if p is not None]
        pool_bytes = sum(p.nbytes() for p in pools)
        used = sum(len(pages) for pages in self._pages)
        per_page = pool_bytes / self._num_pages if self._num_pages else 0
        return {
            "policy": self.policy.spec,
            "page_size": self.page_size,
            "layers": len(pools),
            "batch": len(self._lengths),
            "seq_length": self._seen,
            "lengths": list(self._lengths),
            "pages_used": used,
            "pages_total": self._num_pages,
            "kv_dtype": str(pools[0].k.dtype).removeprefix("torch.") if pools else None,
            "bytes_allocated": pool_bytes + (self._workspace.numel() if self._workspace is not None else 0),
            "bytes_used": int(used * per_page),
        }

    def __repr__(self) -> str:
        s = self.stats()
        return (
            f"AdamasCache(policy={s['policy']!r}, page_size={s['page_size']}, layers={s['layers']}, "
            f"batch={s['batch']}, seq_length={s['seq_length']}, pages={s['pages_used']}/{s['pages_total']}, "
            f"allocated={s['bytes_allocated'] / 2**20:.1f} MiB, used={s['bytes_used'] / 2**20:.1f} MiB)"
        )

    # ---- steps --------------------------------------------------------------------------------

    def _begin_step(self, key_states: torch.Tensor) -> None:
        batch, _, q_len, _ = key_states.shape
        prev = self._step
        if prev is not None and prev.appended != prev.updated:
            missing = sorted(prev.updated - prev.appended)
            raise RuntimeError(
                f"AdamasCache: layers {missing} of the previous forward pass stored nothing: the "
                "model must run with attn_implementation='adamas' (import adamas, then "
                "from_pretrained(..., attn_implementation='adamas'))"
            )
        if not self._lengths:
            self._lengths = [0] * batch
            self._pages = [[] for _ in range(batch)]
            self._device = key_states.device
        elif batch != len(self._lengths):
            raise ValueError(
                f"AdamasCache holds {len(self._lengths)} sequences, this forward pass has {batch} "
                "(reset() the cache to start another batch)"
            )
        step = _Step(q_len=q_len, past_lengths=list(self._lengths))
        if q_len > 1 and self._seen > 0:
            step.past_slots = self._past_slots(self._seen)
        self._seen += q_len
        self._step = step

    def _past_slots(self, seen: int) -> torch.Tensor:
        """[B, seen] global slots of the stored tokens, right-aligned (left padding), -1 before."""
        out = torch.full((len(self._lengths), seen), -1, dtype=torch.int64)
        for b, length in enumerate(self._lengths):
            if length > seen:
                raise RuntimeError(
                    f"AdamasCache: sequence {b} holds {length} tokens, more than the {seen} seen"
                )
            out[b, seen - length :] = self._slots_of(b, 0, length)
        return out.to(self._device)

    def _slots_of(self, b: int, start: int, stop: int) -> torch.Tensor:
        """Global slots of tokens [start, stop) of sequence b (int64, host)."""
        t = torch.arange(start, stop, dtype=torch.int64)
        pages = torch.tensor(self._pages[b], dtype=torch.int64)
        return pages[t // self.page_size] * self.page_size + t % self.page_size

    def _gather_past(self, layer_idx: int, past_slots: torch.Tensor, dtype: torch.dtype):
        """The stored K/V of layer ``layer_idx`` in the padded layout ``[B, H, seen, D]`` (zeros at
        padding, which the mask hides; zeros, not the pools' stale bytes, so no NaN leaks)."""
        pool = self._pools[layer_idx]
        heads, num_pages, page_size, dim = pool.k.shape
        batch, seen = past_slots.shape
        index = past_slots.clamp_min(0).flatten()
        valid = (past_slots >= 0)[:, None, :, None]

        def gather(pool_tensor: torch.Tensor) -> torch.Tensor:
            rows = pool_tensor.view(heads, num_pages * page_size, dim).index_select(1, index)
            rows = rows.view(heads, batch, seen, dim).transpose(0, 1)
            return torch.where(valid, rows, 0).to(dtype)

        return gather(pool.k), gather(pool.v)

    def _append(self, layer_idx: int, key: torch.Tensor, value: torch.Tensor, attention_mask) -> _Step:
        """Writes the step's new tokens of layer ``layer_idx`` (the last ``q_len`` positions of
        ``key``/``value``, padding skipped) into the pools. Returns the step."""
        step = self._step
        if not step.built:
            self._build(step, attention_mask)
        pool = self._pool(layer_idx, key)
        batch, heads, _, dim = key.shape

        def rows(x: torch.Tensor) -> torch.Tensor:  # [B, H, kv, D] -> [n, H, D] of the real new tokens
            x = x[:, :, -step.q_len :, :].transpose(1, 2).reshape(batch * step.q_len, heads, dim)
            return (x if step.token_index is None else x.index_select(0, step.token_index)).contiguous()

        ops.append_kv(
            pool.k,
            pool.v,
            pool.codes,
            pool.thresholds,
            rows(key),
            rows(value),
            step.slots,
            self.policy.hadamard,
        )
        step.appended.add(layer_idx)
        return step

    def _build(self, step: _Step, attention_mask) -> None:
        """Pages, slots and tables of the step's new tokens, once for all layers."""
        batch = len(self._lengths)
        if step.decode:
            counts = [1] * batch
        else:
            real = self._real_tokens(attention_mask, batch, step.q_len, step.past_lengths)
            if real is None:
                counts = [step.q_len] * batch
            else:
                counts = real.sum(dim=1).tolist()
                step.token_index = real.flatten().nonzero().flatten().to(self._device)
        new_lengths = [length + n for length, n in zip(self._lengths, counts)]
        self._reserve(new_lengths)
        if step.decode:
            slot_list = [self._slot(b, length) for b, length in enumerate(self._lengths)]
            slots = torch.tensor(slot_list, dtype=torch.int32)
        else:
            slots = torch.cat(
                [
                    self._slots_of(b, start, stop)
                    for b, (start, stop) in enumerate(zip(self._lengths, new_lengths))
                ]
            ).to(torch.int32)
        self._lengths = new_lengths
        step.max_length = max(new_lengths)
        host = [torch.tensor(new_lengths, dtype=torch.int32), slots]
        if self._tables is None:
            indptr = [0]
            for pages in self._pages:
                indptr.append(indptr[-1] + len(pages))
            indices = [page for pages in self._pages for page in pages]
            host += [torch.tensor(indptr, dtype=torch.int32), torch.tensor(indices, dtype=torch.int32)]
        # One host-to-device copy for everything the step needs.
        sizes = [t.numel() for t in host]
        device = torch.cat(host).to(self._device).split(sizes)
        step.lengths, step.slots = device[0], device[1]
        if self._tables is None:
            self._tables = (device[2], device[3])
        step.built = True

    def _slot(self, b: int, t: int) -> int:
        return self._pages[b][t // self.page_size] * self.page_size + t % self.page_size

    def _real_tokens(self, attention_mask, batch: int, q_len: int, past_lengths: Sequence[int]):
        """[B, q_len] bool (host): which new tokens are real, from the mask row of the last query
        (causal, it sees every real position); None when all are. Only left padding is valid."""
        if attention_mask is None:
            return None
        if attention_mask.dim() == 4:  # [B or 1, 1, q_len, kv_len]: bool (True: attend) or additive float
            row = attention_mask[:, 0, -1, -q_len:]
            row = row if row.dtype == torch.bool else row == 0
        elif attention_mask.dim() == 2:  # [B, kv_len] padding mask
            row = attention_mask[:, -q_len:].bool()
        else:
            raise ValueError(f"AdamasCache: unexpected attention mask of shape {tuple(attention_mask.shape)}")
        row = row.expand(batch, q_len).cpu()
        if bool(row.all()):
            return None
        # Left padding: within a sequence, no real token before a padding one; and a sequence
        # that already holds tokens gets no more padding.
        bad_order = (row[:, :-1] & ~row[:, 1:]).any(dim=1)
        had_tokens = torch.tensor([length > 0 for length in past_lengths])
        bad = bad_order | (had_tokens & ~row.all(dim=1))
        if bool(bad.any()):
            raise ValueError(
                f"AdamasCache supports left padding only (sequences {bad.nonzero().flatten().tolist()} have "
                "padding after real tokens): tokenize with padding_side='left'"
            )
        return row

    # ---- pools --------------------------------------------------------------------------------

    def _reserve(self, new_lengths: Sequence[int]) -> None:
        """Gives every sequence the pages its new length needs, growing the pools if short."""
        need = [math.ceil(n / self.page_size) - len(pages) for n, pages in zip(new_lengths, self._pages)]
        total = sum(max(0, n) for n in need)
        if total == 0:
            return
        if total > len(self._free):
            self._grow(self._num_pages - len(self._free) + total)
        for pages, n in zip(self._pages, need):
            for _ in range(n):
                pages.append(self._free.pop())
        self._tables = None

    def _grow(self, needed: int) -> None:
        """Reallocates every layer's pools to hold at least ``needed`` pages (copying what they hold)."""
        floor = math.ceil(self.max_tokens / self.page_size) if self.max_tokens else 0
        headroom = needed + needed // 4 if self._num_pages == 0 else 2 * self._num_pages
        new = max(needed, floor, headroom)
        if new * self.page_size > _INT32_MAX:
            raise RuntimeError(
                f"AdamasCache: {new} pages of {self.page_size} tokens exceed the int32 slot range"
            )
        old = self._num_pages

        def grown(t: torch.Tensor, fill_zero: bool) -> torch.Tensor:
            shape = (t.shape[0], new) + tuple(t.shape[2:])
            out = (torch.zeros if fill_zero else torch.empty)(shape, dtype=t.dtype, device=t.device)
            out[:, :old].copy_(t)
            return out

        for i, pool in enumerate(self._pools):
            if pool is not None:  # one layer at a time, so that the peak is one layer's new pools
                self._pools[i] = _LayerPool(
                    grown(pool.k, False), grown(pool.v, False), grown(pool.codes, True), pool.thresholds
                )
        self._free = list(range(new - 1, old - 1, -1)) + self._free
        self._num_pages = new

    def _pool(self, layer_idx: int, key: torch.Tensor) -> _LayerPool:
        """Layer ``layer_idx``'s pools, allocated on first use from the shape of its keys."""
        while len(self._pools) <= layer_idx:
            self._pools.append(None)
        pool = self._pools[layer_idx]
        if pool is not None:
            return pool
        _, heads, _, dim = key.shape
        device = key.device
        dtype = self.kv_dtype or key.dtype
        if device.type == "cuda" and dtype == torch.float32:
            if self.kv_dtype is not None:
                raise ValueError("kv_dtype float32 is CPU-only: the GPU kernels read float16 and bfloat16")
            dtype = torch.float16
        bits = self.policy.bits
        words = ops.code_page_words(bits, dim, self.page_size)
        thresholds = torch.zeros(heads, MAX_THRESHOLDS, dtype=torch.float32)
        thresholds[:, : 2**bits - 1] = torch.tensor(default_thresholds(bits))
        pool = _LayerPool(
            k=torch.empty(heads, self._num_pages, self.page_size, dim, dtype=dtype, device=device),
            v=torch.empty(heads, self._num_pages, self.page_size, dim, dtype=dtype, device=device),
            codes=torch.zeros(heads, self._num_pages, words, dtype=torch.int64, device=device),
            thresholds=thresholds.to(device),
        )
        self._pools[layer_idx] = pool
        return pool

    def _workspace_for(self, num_q_heads: int, pool: _LayerPool, max_length: int) -> torch.Tensor:
        """The cache's one workspace, re-planned (doubling the planned length) when outgrown."""
        heads, batch, length, pages = self._workspace_plan
        if max_length > length:
            length = max(max_length, 2 * length)
        batch = max(batch, len(self._lengths))
        plan = (num_q_heads, batch, length, self._num_pages)
        if self._workspace is None or plan != self._workspace_plan:
            nbytes = ops.workspace_bytes(
                pool.k, pool.codes, pool.thresholds, num_q_heads, batch, length, self.policy.spec
            )
            self._workspace = None  # free the old one before allocating
            self._workspace = ops.new_workspace(nbytes, pool.k.device)
            self._workspace_plan = plan
        return self._workspace

    def _attend(self, layer_idx: int, query, key, value, attention_mask, scaling, dropout, sliding_window):
        """The "adamas" attention function's work for layer ``layer_idx`` (attention.py): stores the
        step's new tokens, then on a decode step returns the attention output ``[B, 1, Hq, D]``
        over the pools; on a prefill step returns None (the caller runs SDPA over ``key``/``value``)."""
        if sliding_window is not None and self._seen > sliding_window:
            raise NotImplementedError(
                f"AdamasCache: sliding-window attention past the window ({self._seen} > {sliding_window} "
                "tokens) is not supported"
            )
        step = self._step
        if not step.decode:
            self._append(layer_idx, key, value, attention_mask)
            return None
        if dropout:
            raise ValueError("AdamasCache decodes in eval mode only: attention dropout is not supported")
        if not step.built:
            self._build(step, attention_mask)
        pool = self._pool(layer_idx, key)
        q = query[:, :, 0, :]  # [B, Hq, D]; the operators make it contiguous fp32
        scale = scaling if scaling is not None else 0.0  # <= 0: the ops use 1/sqrt(head_dim)
        indptr, indices = self._tables
        workspace = self._workspace_for(q.shape[1], pool, step.max_length)
        # Layers below dense_layers attend densely: the `full` policy (same append, dense kernel).
        spec = self.policy.spec if layer_idx >= self.policy.dense_layers else "full"
        out = ops.decode_step(
            q,
            key[:, :, -1, :],
            value[:, :, -1, :],
            step.slots,
            pool.k,
            pool.v,
            pool.codes,
            pool.thresholds,
            indptr,
            indices,
            step.lengths,
            step.max_length,
            spec,
            scale,
            workspace,
        )
        step.appended.add(layer_idx)
        return out.unsqueeze(1)  # [B, 1, Hq, D], the layout sdpa_attention_forward returns
