"""Policy strings as the C++ library parses them (src/policy/policy.cc), for the Python side.

The custom ops parse the policy themselves; Python needs it too, to size the key-code pool
(``bits``), to attend densely in the first ``dense_layers`` layers (the ops take no layer
index: ``dense_layers`` is the caller's, include/adamas/decode/paged_decode.h) and to give
``torch.compile`` the output shapes of ``select`` (``budget``, ``gqa``). Defaults and accepted
values mirror ``PolicyConfig`` (include/adamas/policy/policy.h) and ``check_paged_policy``: the
ops run ``full`` and ``adamas`` with the paper's estimator only.
"""

from __future__ import annotations

import dataclasses

__all__ = ["Policy", "parse_policy", "default_thresholds", "MAX_THRESHOLDS"]

# Columns of a thresholds tensor: kMaxThermoPlanes = 2^kMaxCodeBits - 1 (include/adamas/core/codes.h).
MAX_THRESHOLDS = 7

_KINDS = ("full", "oracle", "adamas", "quest", "streaming")
_BOOL = {"1": True, "true": True, "on": True, "0": False, "false": False, "off": False}


@dataclasses.dataclass(frozen=True)
class Policy:
    """A parsed policy. ``spec`` is the string handed to the ops unchanged."""

    spec: str
    kind: str = "full"
    budget: int = 256  # tokens per query head, the current token included
    dense_layers: int = 2  # layers [0, dense_layers) attend densely (the paper's 2)
    gqa_shared: bool = False  # gqa=shared: one selection per KV head instead of per query head
    bits: int = 2
    distance: str = "l1"
    hadamard: bool = True

    @property
    def sparse(self) -> bool:
        return self.kind == "adamas"

    def selection_width(self, max_length: int) -> int:
        """Columns of ``select``'s indices: min(budget, max_length)."""
        return min(self.budget, max_length)


def _int(key: str, value: str) -> int:
    try:
        return int(value, 10)
    except ValueError:
        raise ValueError(f"policy option {key}={value}: expected an integer") from None


def parse_policy(spec: str) -> Policy:
    """Parses ``NAME[:key=value,...]`` and checks it is a policy the paged ops run.

    Raises ValueError naming the offending part, like the C++ parser (which the ops run again).
    """
    if not isinstance(spec, str):
        raise TypeError(f"policy must be a str, got {type(spec).__name__}")
    name, _, rest = spec.partition(":")
    if name not in _KINDS:
        raise ValueError(f"unknown policy '{name}': expected full, oracle, adamas, quest or streaming")
    fields: dict = {"spec": spec, "kind": name}
    for item in rest.split(",") if rest else ():
        key, eq, value = item.partition("=")
        if not eq:
            raise ValueError(f"policy option '{item}' is not key=value")
        if key in ("budget", "dense_layers", "bits", "sinks", "keep_sinks", "keep_recent"):
            fields[key] = _int(key, value)
        elif key == "hadamard":
            if value not in _BOOL:
                raise ValueError(f"policy option hadamard={value}: expected 0/1, true/false or on/off")
            fields["hadamard"] = _BOOL[value]
        elif key == "dist":
            if value not in ("l1", "l2", "ip"):
                raise ValueError(f"policy option dist={value}: expected l1, l2 or ip")
            fields["distance"] = value
        elif key == "gqa":
            if value not in ("per-head", "shared"):
                raise ValueError(f"policy option gqa={value}: expected per-head or shared")
            fields["gqa_shared"] = value == "shared"
        elif key == "thresholds":
            if value not in ("paper", "calibrated"):
                raise ValueError(f"policy option thresholds={value}: expected paper or calibrated")
            fields["thresholds"] = value
        else:
            raise ValueError(
                f"unknown policy option '{key}': expected budget, dense_layers, gqa, bits, dist, "
                "hadamard, thresholds, keep_sinks, keep_recent or sinks"
            )

    if name not in ("full", "adamas"):
        raise ValueError(
            f"policy {spec}: the paged decode ops run `full` and `adamas` (oracle, quest and "
            "streaming run in the C++ runtime)"
        )
    unsupported = [f"{k}={fields[k]}" for k in ("keep_sinks", "keep_recent") if fields.get(k, 0)]
    if fields.get("thresholds") == "calibrated":
        unsupported.append("thresholds=calibrated")
    if fields.get("distance") == "ip":
        unsupported.append("dist=ip")
    if unsupported:
        raise ValueError(
            f"policy {spec}: {', '.join(unsupported)} run in the C++ CPU runtime only for now "
            "(the paged ops run the paper's estimator)"
        )
    for key in ("sinks", "keep_sinks", "keep_recent", "thresholds"):
        fields.pop(key, None)
    policy = Policy(**fields)
    if policy.budget < 1:
        raise ValueError(f"budget must be ≥ 1 token, got {policy.budget}")
    if policy.dense_layers < 0:
        raise ValueError(f"dense_layers must be ≥ 0, got {policy.dense_layers}")
    if not 1 <= policy.bits <= 3:
        raise ValueError(f"adamas bits must be 1, 2 or 3, got {policy.bits}")
    return policy


def default_thresholds(bits: int) -> list[float]:
    """The library's fixed thresholds (``default_thresholds`` in src/core/codes.cc)."""
    table = {1: [0.0], 2: [-10.0, 0.0, 10.0], 3: [-15.0, -10.0, -5.0, 0.0, 5.0, 10.0, 15.0]}
    if bits not in table:
        raise ValueError(f"code bits must be 1, 2 or 3, got {bits}")
    return table[bits]
