"""Simulated data the project generates itself (demo and benchmarks)."""

from __future__ import annotations

from .demo import (
    DEMO_CYTO_SAMPLES,
    DEMO_SAMPLES,
    demo_paths,
    is_demo_cohort,
    simulate_pbmc,
    write_demo,
)

__all__ = [
    "DEMO_CYTO_SAMPLES",
    "DEMO_SAMPLES",
    "demo_paths",
    "is_demo_cohort",
    "simulate_pbmc",
    "write_demo",
]
