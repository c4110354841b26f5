"""Tools: integration, clustering, annotation, composition."""

from __future__ import annotations

from .._lazy import attach

__getattr__, __all__ = attach(
    __name__,
    {
        "annotate": "annotation",
        "annotate_celltypist": "annotation",
        "annotate_scanvi": "annotation",
        "cluster": "clustering",
        "composition": "abundance",
        "integrate": "integration",
        "read_marker_table": "annotation",
    },
)
