"""Preprocessing: quality control, normalisation, highly variable genes, cytometry
compensation / transforms / gating, batch normalisation."""

from __future__ import annotations

from .._lazy import attach

__getattr__, __all__ = attach(
    __name__,
    {
        "QCError": "quality",
        "qc": "quality",
        "combine_hvg": "normalization",
        "common_genes": "normalization",
        "hvg_stats": "normalization",
        "normalize": "normalization",
    },
)
