"""The "adamas" attention function and its registration with transformers."""

from __future__ import annotations

import torch
from transformers import AttentionInterface, AttentionMaskInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import sdpa_mask

from ._pending import take_pending

__all__ = ["ATTENTION_NAME", "adamas_attention_forward", "register"]

ATTENTION_NAME = "adamas"


def adamas_attention_forward(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    **kwargs,
) -> tuple[torch.Tensor, None]:
    """transformers' attention-function contract: ``query [B, Hq, q_len, D]``, ``key``/``value``
    ``[B, Hkv, kv_len, D]`` as ``past_key_values.update`` returned them, ``attention_mask`` from
    ``sdpa_mask``; returns ``([B, q_len, Hq, D] contiguous, None)`` like ``sdpa_attention_forward``.

    With an :class:`~adamas.AdamasCache` the new tokens are stored in its pools; decode steps then
    attend through the Adamas operators, prefills through SDPA. Without one (no cache, or another
    cache class) this is ``sdpa_attention_forward``.
    """
    cache = take_pending(getattr(module, "layer_idx", None))
    if cache is not None:
        out = cache._attend(
            module.layer_idx,
            query,
            key,
            value,
            attention_mask,
            scaling,
            dropout,
            kwargs.get("sliding_window"),
        )
        if out is not None:
            return out, None
    return sdpa_attention_forward(
        module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
    )


def register() -> None:
    """Registers the attention function and its mask function (transformers' ``sdpa_mask``: without a
    registered mask function transformers builds no mask at all) under the name "adamas", so that
    ``from_pretrained(..., attn_implementation="adamas")`` works. Idempotent."""
    AttentionInterface.register(ATTENTION_NAME, adamas_attention_forward)
    AttentionMaskInterface.register(ATTENTION_NAME, sdpa_mask)
