"""Readers and writers: sample sheets, 10x matrices, streamed ``.h5ad``.

Each name is imported from its module on first use, so reading a sample sheet (what the
Snakefile does while it parses) does not import anndata."""

from __future__ import annotations

from importlib import import_module
from typing import Any

__all__ = [
    "InputFormatError",
    "SampleSheetError",
    "StreamedH5ad",
    "read_columns",
    "read_obs",
    "read_rna",
    "read_sample_sheet",
    "write_streamed",
]
_LAZY = {
    "InputFormatError": ".tenx",
    "SampleSheetError": ".samples",
    "StreamedH5ad": ".h5ad",
    "read_columns": ".h5ad",
    "read_obs": ".h5ad",
    "read_rna": ".tenx",
    "read_sample_sheet": ".samples",
    "write_streamed": ".h5ad",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
