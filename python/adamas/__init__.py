"""Adamas sparse attention for PyTorch and Hugging Face transformers.

``import adamas`` loads the operator library (``torch.ops.adamas``; see :mod:`adamas.ops`) and,
when transformers is installed, registers the attention implementation "adamas"::

    import adamas
    model = AutoModelForCausalLM.from_pretrained(path, attn_implementation="adamas")
    model.generate(**inputs, past_key_values=adamas.AdamasCache(policy="adamas:budget=256"))
"""

from __future__ import annotations

import importlib.util

import torch

from . import _library

_MIN_TORCH = (2, 4)  # torch.library.register_fake


def _torch_version() -> tuple[int, int]:
    major, minor = torch.__version__.split(".")[:2]
    return int(major), int("".join(c for c in minor if c.isdigit()) or 0)


if _torch_version() < _MIN_TORCH:
    raise ImportError(
        f"adamas needs torch >= {_MIN_TORCH[0]}.{_MIN_TORCH[1]} (torch.library.register_fake), found "
        f"{torch.__version__}; Debian 12's python3-torch (1.13) is not supported"
    )

LIBRARY_PATH = _library.load()

from . import ops  # noqa: E402  (after the library: the fakes need the operators defined)
from .policy import Policy, default_thresholds, parse_policy  # noqa: E402

ops.register_fakes()

__all__ = ["LIBRARY_PATH", "Policy", "default_thresholds", "ops", "parse_policy"]

if importlib.util.find_spec("transformers") is not None:
    from .attention import adamas_attention_forward, register  # noqa: E402
    from .cache import AdamasCache  # noqa: E402

    register()
    __all__ += ["AdamasCache", "adamas_attention_forward", "register"]
