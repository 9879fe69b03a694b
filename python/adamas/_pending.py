"""The hand-off from ``AdamasCache.update`` to the attention function of the same layer.

transformers passes ``past_key_values`` to the attention module's forward but not to the
attention function it then calls, so ``update`` leaves (cache, layer) here and the "adamas"
attention function takes it. A context variable keeps threads (and asyncio tasks) apart.
"""

from __future__ import annotations

import contextvars

_PENDING: contextvars.ContextVar[tuple[object, int] | None] = contextvars.ContextVar(
    "adamas_pending", default=None
)


def set_pending(cache: object, layer_idx: int) -> None:
    _PENDING.set((cache, layer_idx))


def take_pending(layer_idx: int | None):
    """The cache whose ``update`` ran last for ``layer_idx``, once; None if there is none (the
    forward runs without an AdamasCache)."""
    pending = _PENDING.get()
    if pending is None or pending[1] != layer_idx:
        return None
    _PENDING.set(None)
    return pending[0]
