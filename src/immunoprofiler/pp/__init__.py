"""Preprocessing: quality control, normalisation, highly variable genes."""

from __future__ import annotations

from .normalization import combine_hvg, hvg_stats, normalize, normalize_cohort
from .quality import QCError, qc

__all__ = ["QCError", "combine_hvg", "hvg_stats", "normalize", "normalize_cohort", "qc"]
