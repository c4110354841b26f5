"""Preprocessing: quality control, normalisation, highly variable genes, cytometry
compensation / transforms / gating, batch normalisation."""

from __future__ import annotations

from .normalization import combine_hvg, common_genes, hvg_stats, normalize
from .quality import QCError, qc

__all__ = ["QCError", "combine_hvg", "common_genes", "hvg_stats", "normalize", "qc"]
