"""Figures, returned as matplotlib objects (never shown)."""

from __future__ import annotations

from .._lazy import attach

__getattr__, __all__ = attach(
    __name__,
    {
        "abundance_bars": "cytometry",
        "metacluster_heatmap": "cytometry",
        "umap_scatter": "embedding",
        "marker_dotplot": "figures",
        "qc_figure": "figures",
    },
)
