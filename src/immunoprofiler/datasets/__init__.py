"""Simulated data the project generates itself (demo and benchmarks).

The demo's layout (:mod:`.layout`) is imported at once; the simulator (:mod:`.demo`, which
needs anndata) on first use of one of its names, so the Snakefile parses without it."""

from __future__ import annotations

from importlib import import_module
from typing import Any

from .layout import DEMO_CYTO_SAMPLES, DEMO_SAMPLES, demo_paths, is_demo_cohort

__all__ = [
    "DEMO_CYTO_SAMPLES",
    "DEMO_SAMPLES",
    "demo_paths",
    "is_demo_cohort",
    "simulate_pbmc",
    "write_demo",
]
_LAZY = {"simulate_pbmc": ".demo", "write_demo": ".demo"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
