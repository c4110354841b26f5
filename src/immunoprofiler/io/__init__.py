"""Readers and writers: sample sheets, 10x matrices, streamed ``.h5ad``.

Names are imported from their module on first use, so reading a sample sheet (what the
Snakefile does while it parses) does not import anndata."""

from __future__ import annotations

from .._lazy import attach

__getattr__, __all__ = attach(
    __name__,
    {
        "InputFormatError": "tenx",
        "SampleSheetError": "samples",
        "lazy_matrix": "h5ad",
        "read_columns": "h5ad",
        "read_obs": "h5ad",
        "read_rna": "tenx",
        "read_sample_sheet": "samples",
    },
)
