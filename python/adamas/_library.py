"""Finds and loads the shared library that defines the ``torch.ops.adamas`` operators."""

from __future__ import annotations

import os
from pathlib import Path

import torch

LIBRARY_NAME = "_adamas_ops.so"

BUILD_HINT = (
    "build it with `cmake --preset torch && cmake --build --preset torch` in the repository root "
    "and put build-torch/python on PYTHONPATH (`PYTHONPATH=build-torch/python`), or point "
    "ADAMAS_OPS_LIBRARY at the built " + LIBRARY_NAME
)


def library_path() -> Path:
    """Where the operator library is: $ADAMAS_OPS_LIBRARY, else next to this package."""
    override = os.environ.get("ADAMAS_OPS_LIBRARY")
    if override:
        path = Path(override)
        if not path.is_file():
            raise ImportError(f"ADAMAS_OPS_LIBRARY={override} is not a file; {BUILD_HINT}")
        return path
    path = Path(__file__).with_name(LIBRARY_NAME)
    if not path.is_file():
        raise ImportError(f"the Adamas operator library {LIBRARY_NAME} is not in {path.parent}: {BUILD_HINT}")
    return path


def load() -> Path:
    """Loads the library once per process (torch.ops.load_library registers the operators)."""
    path = library_path()
    torch.ops.load_library(str(path))
    return path
