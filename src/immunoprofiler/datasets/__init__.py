"""Simulated data the project generates itself (demo and benchmarks).

The demo's layout (:mod:`.layout`) is light; the simulator (:mod:`.demo`, which needs anndata)
is imported on first use of its names, so the Snakefile parses without it."""

from __future__ import annotations

from .._lazy import attach

__getattr__, __all__ = attach(
    __name__,
    {
        "DEMO_CYTO_SAMPLES": "layout",
        "DEMO_SAMPLES": "layout",
        "demo_paths": "layout",
        "is_demo_cohort": "layout",
        "simulate_pbmc": "demo",
        "write_demo": "demo",
    },
)
