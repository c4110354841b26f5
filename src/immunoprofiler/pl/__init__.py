"""Figures, returned as matplotlib objects (never shown)."""

from __future__ import annotations

from .figures import marker_dotplot, qc_figure, umap_figure

__all__ = ["marker_dotplot", "qc_figure", "umap_figure"]
