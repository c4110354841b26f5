"""Tools: integration, clustering, annotation, composition."""

from __future__ import annotations

from .abundance import composition
from .annotation import annotate, annotate_celltypist, annotate_scanvi, read_marker_table
from .clustering import cluster
from .integration import integrate

__all__ = [
    "annotate",
    "annotate_celltypist",
    "annotate_scanvi",
    "cluster",
    "composition",
    "integrate",
    "read_marker_table",
]
