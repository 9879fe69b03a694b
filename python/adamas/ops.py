"""Typed wrappers of the ``torch.ops.adamas`` operators, and their fake (meta) implementations.

The layout every operator reads, for ONE layer (all tensors on one device, CPU or CUDA):

* ``k_cache``, ``v_cache``: ``[num_kv_heads, num_pages, page_size, head_dim]``, float16 or
  bfloat16 (the CPU also takes float32), head-major, contiguous.
* ``codes``: ``[num_kv_heads, num_pages, code_page_words]`` int64, with ``code_page_words =
  bits * ceil(head_dim / 64) * (ceil(page_size / 8) * 8)`` (:func:`code_page_words`).
* ``thresholds``: ``[num_kv_heads, 7]`` float32; each head's first ``2**bits - 1`` entries are
  its ascending bucket thresholds (:func:`adamas.policy.default_thresholds`), the rest unused.
* A ragged batch of ``B`` sequences as CSR page tables (int32, on the cache's device):
  ``page_indptr [B + 1]``, ``page_indices [page_indptr[B]]`` (sequence ``b``'s pages in order),
  ``lengths [B]`` (tokens of each sequence, the current one included, each >= 1) and a host int
  ``max_length >= max(lengths)``. Token ``t`` of sequence ``b`` is in page
  ``page_indices[page_indptr[b] + t // page_size]``, slot ``t % page_size``; its global slot is
  ``page * page_size + slot``.
* ``workspace``: a zero-initialized uint8 tensor on the cache's device of at least
  :func:`workspace_bytes` bytes (any size on the CPU), reused across layers and steps.
* ``policy``: ``"full"`` or ``"adamas[:budget=N,bits=1..3,dist=l1|l2,gqa=per-head|shared,
  hadamard=0|1]"``. ``dense_layers`` is ignored by the ops: they know no layer index.

Bad arguments raise RuntimeError naming the argument.
"""

from __future__ import annotations

import math

import torch

from .policy import parse_policy

__all__ = [
    "append_kv",
    "code_page_words",
    "decode",
    "dense_attention",
    "new_workspace",
    "select",
    "sparse_attention",
    "workspace_bytes",
]

Tensor = torch.Tensor


def code_page_words(bits: int, head_dim: int, page_size: int) -> int:
    """int64 words of one code page of one head: bits x 64-dim words x slots rounded up to 8."""
    return bits * math.ceil(head_dim / 64) * (math.ceil(page_size / 8) * 8)


def append_kv(
    k_cache: Tensor,
    v_cache: Tensor,
    codes: Tensor,
    thresholds: Tensor,
    k: Tensor,
    v: Tensor,
    slots: Tensor,
    hadamard: bool = True,
) -> None:
    """Writes ``n`` tokens into the cache: K/V rounded to the cache dtype, and the key codes.

    ``k``, ``v``: ``[n, num_kv_heads, head_dim]``, any float dtype, contiguous. ``slots``: int32
    ``[n]`` global slots. Codes are computed from the key as stored (after rounding), with the
    Hadamard transform unless ``hadamard`` is False (it must match the policy's).
    """
    torch.ops.adamas.append_kv(k_cache, v_cache, codes, thresholds, k, v, slots, hadamard)


def workspace_bytes(
    k_cache: Tensor,
    codes: Tensor,
    thresholds: Tensor,
    num_q_heads: int,
    max_batch: int,
    max_length: int,
    policy: str,
) -> int:
    """Bytes of workspace that steps of up to ``max_batch`` sequences of up to ``max_length``
    tokens need with ``num_q_heads`` query heads under ``policy`` (0 is possible on the CPU)."""
    return torch.ops.adamas.workspace_bytes(
        k_cache, codes, thresholds, num_q_heads, max_batch, max_length, policy
    )


def new_workspace(nbytes: int, device: torch.device | str) -> Tensor:
    """A zeroed workspace of ``nbytes`` (at least one element, so that it has a data pointer)."""
    return torch.zeros(max(1, nbytes), dtype=torch.uint8, device=device)


def select(
    q: Tensor,
    k_cache: Tensor,
    codes: Tensor,
    thresholds: Tensor,
    page_indptr: Tensor,
    page_indices: Tensor,
    lengths: Tensor,
    max_length: int,
    policy: str,
    workspace: Tensor,
) -> tuple[Tensor, Tensor]:
    """The tokens each query attends to under an ``adamas`` policy.

    ``q``: ``[B, num_q_heads, head_dim]``, post-RoPE. Returns ``(indices, counts)``: int32
    ``[rows, min(budget, max_length)]`` and ``[rows]``, with ``rows = B * num_q_heads`` (row
    ``b * num_q_heads + h``) or ``B * num_kv_heads`` with ``gqa=shared``. Row ``r`` holds
    ``counts[r]`` ascending token positions of its sequence, the current token (``length - 1``)
    last; every position when ``budget >= length``.
    """
    return torch.ops.adamas.select(
        q, k_cache, codes, thresholds, page_indptr, page_indices, lengths, max_length, policy, workspace
    )


def sparse_attention(
    q: Tensor,
    k_cache: Tensor,
    v_cache: Tensor,
    page_indptr: Tensor,
    page_indices: Tensor,
    lengths: Tensor,
    max_length: int,
    indices: Tensor,
    counts: Tensor,
    shared: bool,
    scale: float,
    workspace: Tensor,
) -> Tensor:
    """``softmax(q K_S^T scale) V_S`` over a selection from :func:`select` (fp32 accumulation).

    ``shared``: the rows are per KV head (``gqa=shared``). ``scale <= 0``: ``1/sqrt(head_dim)``.
    Returns ``[B, num_q_heads, head_dim]`` in ``q``'s dtype.
    """
    return torch.ops.adamas.sparse_attention(
        q,
        k_cache,
        v_cache,
        page_indptr,
        page_indices,
        lengths,
        max_length,
        indices,
        counts,
        shared,
        scale,
        workspace,
    )


def dense_attention(
    q: Tensor,
    k_cache: Tensor,
    v_cache: Tensor,
    page_indptr: Tensor,
    page_indices: Tensor,
    lengths: Tensor,
    max_length: int,
    scale: float,
    workspace: Tensor,
) -> Tensor:
    """Attention of ``q [B, num_q_heads, head_dim]`` over every token of each sequence.

    ``scale <= 0``: ``1/sqrt(head_dim)``. Returns ``[B, num_q_heads, head_dim]`` in ``q``'s dtype.
    """
    return torch.ops.adamas.dense_attention(
        q, k_cache, v_cache, page_indptr, page_indices, lengths, max_length, scale, workspace
    )


def decode(
    q: Tensor,
    k_cache: Tensor,
    v_cache: Tensor,
    codes: Tensor,
    thresholds: Tensor,
    page_indptr: Tensor,
    page_indices: Tensor,
    lengths: Tensor,
    max_length: int,
    policy: str,
    scale: float,
    workspace: Tensor,
) -> Tensor:
    """One decode step of one layer: select + sparse attention, fused (dense attention with
    ``full`` or where ``budget >= length``). Captures in CUDA graphs for a fixed ``max_length``.

    ``q``: ``[B, num_q_heads, head_dim]``, post-RoPE. ``scale <= 0``: ``1/sqrt(head_dim)``.
    Returns ``[B, num_q_heads, head_dim]`` in ``q``'s dtype.
    """
    return torch.ops.adamas.decode(
        q,
        k_cache,
        v_cache,
        codes,
        thresholds,
        page_indptr,
        page_indices,
        lengths,
        max_length,
        policy,
        scale,
        workspace,
    )


def decode_step(
    q: Tensor,
    k_new: Tensor,
    v_new: Tensor,
    slots: Tensor,
    k_cache: Tensor,
    v_cache: Tensor,
    codes: Tensor,
    thresholds: Tensor,
    page_indptr: Tensor,
    page_indices: Tensor,
    lengths: Tensor,
    max_length: int,
    policy: str,
    scale: float,
    workspace: Tensor,
) -> Tensor:
    """One fused decode step of one layer: :func:`append_kv` of the step's tokens, then
    :func:`decode` (one operator call per layer instead of two).

    ``k_new``/``v_new``: ``[B, num_kv_heads, head_dim]``, the step's token of each sequence, written
    at ``slots`` (int32 ``[B]``); ``lengths`` already count it. Returns ``[B, num_q_heads, head_dim]``.
    """
    return torch.ops.adamas.decode_step(
        q,
        k_new,
        v_new,
        slots,
        k_cache,
        v_cache,
        codes,
        thresholds,
        page_indptr,
        page_indices,
        lengths,
        max_length,
        policy,
        scale,
        workspace,
    )


def register_fakes() -> None:
    """Fake (meta) implementations: output shapes and dtypes for torch.compile / FakeTensor.

    ``workspace_bytes`` has none on purpose: it plans host-side buffers and must be called
    outside compiled regions, with concrete shapes.
    """

    @torch.library.register_fake("adamas::append_kv")
    def _append_kv_fake(k_cache, v_cache, codes, thresholds, k, v, slots, hadamard):
        return None

    @torch.library.register_fake("adamas::select")
    def _select_fake(
        q, k_cache, codes, thresholds, page_indptr, page_indices, lengths, max_length, policy, workspace
    ):
        p = parse_policy(policy)
        if not p.sparse:
            raise RuntimeError(f"select: policy {policy} selects nothing (adamas does)")
        rows = q.shape[0] * (k_cache.shape[0] if p.gqa_shared else q.shape[1])
        width = p.selection_width(max_length)
        return q.new_empty((rows, width), dtype=torch.int32), q.new_empty((rows,), dtype=torch.int32)

    @torch.library.register_fake("adamas::sparse_attention")
    def _sparse_attention_fake(
        q,
        k_cache,
        v_cache,
        page_indptr,
        page_indices,
        lengths,
        max_length,
        indices,
        counts,
        shared,
        scale,
        workspace,
    ):
        return q.new_empty(q.shape)

    @torch.library.register_fake("adamas::dense_attention")
    def _dense_attention_fake(
        q, k_cache, v_cache, page_indptr, page_indices, lengths, max_length, scale, workspace
    ):
        return q.new_empty(q.shape)

    @torch.library.register_fake("adamas::decode")
    def _decode_fake(
        q,
        k_cache,
        v_cache,
        codes,
        thresholds,
        page_indptr,
        page_indices,
        lengths,
        max_length,
        policy,
        scale,
        workspace,
    ):
        parse_policy(policy)  # the eager op would refuse a bad policy; so does tracing
        return q.new_empty(q.shape)

    @torch.library.register_fake("adamas::decode_step")
    def _decode_step_fake(
        q,
        k_new,
        v_new,
        slots,
        k_cache,
        v_cache,
        codes,
        thresholds,
        page_indptr,
        page_indices,
        lengths,
        max_length,
        policy,
        scale,
        workspace,
    ):
        parse_policy(policy)
        return q.new_empty(q.shape)
