"""Lazy public names for subpackages (the SPEC 1 pattern of scanpy and scikit-image).

``from immunoprofiler.pp import qc`` keeps working, but importing ``immunoprofiler.pp.cytometry``
no longer imports scanpy through ``pp/__init__``: a cytometry job's start-up stays light.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable


def attach(package: str, exports: dict[str, str]) -> tuple[Callable[[str], object], list[str]]:
    """``(__getattr__, __all__)`` for ``package``, whose names ``exports`` maps to the
    submodule that defines each (imported at first use)."""

    def __getattr__(name: str) -> object:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{exports[name]}"), name)

    return __getattr__, sorted(exports)
