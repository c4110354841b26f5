"""Readers and writers: sample sheets, 10x matrices, streamed ``.h5ad``."""

from __future__ import annotations

from .h5ad import StreamedH5ad, read_columns, read_obs, write_streamed
from .samples import SampleSheetError, read_sample_sheet
from .tenx import InputFormatError, read_rna

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
