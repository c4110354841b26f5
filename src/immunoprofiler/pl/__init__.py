"""Figures, returned as matplotlib objects (never shown)."""

from __future__ import annotations

from .cytometry import abundance_bars, metacluster_heatmap
from .embedding import umap_scatter
from .figures import marker_dotplot, qc_figure

__all__ = ["abundance_bars", "marker_dotplot", "metacluster_heatmap", "qc_figure", "umap_scatter"]
