"""Cohort normalisation: shifted-log counts and batch-aware highly variable genes.

The rule function (:func:`immunoprofiler.pipeline.rna_normalize`) feeds these one batch
(HVG statistics) and one sample (writing) at a time, so memory is bounded by the largest
batch, not the cohort. The HVG selection reproduces ``scanpy.pp.highly_variable_genes(flavor="seurat_v3",
batch_key=...)``: scanpy computes each batch's normalised variances, and
:func:`combine_hvg` ranks them across batches exactly as scanpy does.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Literal

import anndata as ad
import numpy as np
import pandas as pd
import scanpy as sc
import scipy.sparse as sp

logger = logging.getLogger(__name__)

#: the obs column (sheet column) that names a sample's processing batch
BATCH_KEY = "batch"


def normalize(adata: ad.AnnData, *, target_sum: float = 1e4) -> None:
    """Shifted-log normalisation of ``layers["counts"]`` into ``X`` (float32 CSR), in place.

    ``X = log1p(counts / total * target_sum)``. A fixed ``target_sum`` keeps samples
    that are normalised separately on one scale.
    """
    X = sp.csr_matrix(adata.layers["counts"], dtype=np.float32, copy=True)
    totals = np.asarray(X.sum(axis=1)).ravel()
    scale = np.divide(target_sum, totals, out=np.zeros_like(totals), where=totals > 0)
    X.data *= np.repeat(scale, np.diff(X.indptr)).astype(np.float32)
    np.log1p(X.data, out=X.data)
    adata.X = X


def hvg_stats(
    counts: ad.AnnData | sp.spmatrix, *, n_top_genes: int, span: float = 0.3
) -> pd.DataFrame:
    """Per-gene ``means``, ``variances`` and ``variances_norm`` of one batch (scanpy seurat_v3)."""
    a = counts if isinstance(counts, ad.AnnData) else ad.AnnData(X=counts)
    df = sc.pp.highly_variable_genes(
        a, flavor="seurat_v3", n_top_genes=min(n_top_genes, a.n_vars), span=span, inplace=False
    )
    out = df[["means", "variances", "variances_norm"]].copy()
    out["n_cells"] = a.n_obs
    return out


def combine_hvg(stats: Mapping[str, pd.DataFrame], *, n_top_genes: int) -> pd.DataFrame:
    """Select ``n_top_genes`` across batches from per-batch :func:`hvg_stats` (seurat_v3 rules).

    Genes are ranked within each batch by normalised variance; genes are sorted by
    the median rank over the batches where they are in the top ``n_top_genes``,
    ties broken by the number of such batches.
    """
    frames = list(stats.values())
    index = frames[0].index
    norm = np.vstack([f["variances_norm"].to_numpy() for f in frames])
    ranks = np.argsort(np.argsort(-norm, axis=1), axis=1).astype(np.float32)
    n_top = min(n_top_genes, len(index))
    nbatches = (ranks < n_top).sum(axis=0)
    ranks[ranks >= n_top] = np.nan
    median_rank = np.ma.median(np.ma.masked_invalid(ranks), axis=0).filled(np.nan)
    n = np.array([f["n_cells"].iloc[0] for f in frames], dtype=np.float64)
    means_b = np.vstack([f["means"].to_numpy() for f in frames])
    vars_b = np.vstack([f["variances"].to_numpy() for f in frames])
    mean = (n[:, None] * means_b).sum(0) / n.sum()
    # pooled variance (ddof=1) from per-batch means and variances
    ss = ((n[:, None] - 1) * vars_b + n[:, None] * (means_b - mean) ** 2).sum(0)
    df = pd.DataFrame(
        {
            "means": mean,
            "variances": ss / max(n.sum() - 1, 1),
            "variances_norm": norm.mean(axis=0),
            "highly_variable_rank": median_rank,
            "highly_variable_nbatches": nbatches,
        },
        index=index,
    )
    order = df.sort_values(
        ["highly_variable_rank", "highly_variable_nbatches"],
        ascending=[True, False],
        na_position="last",
    ).index
    df["highly_variable"] = False
    df.loc[order[:n_top], "highly_variable"] = True
    return df


def common_genes(genes_of: Mapping[str, pd.Index]) -> pd.Index:
    """Genes present in every sample (``{file: var_names}``), in the order of the first; raise
    if none are shared."""
    genes: pd.Index | None = None
    for name, g in genes_of.items():
        if genes is None:
            genes = g
        elif not g.equals(genes):
            before = len(genes)
            genes = genes[genes.isin(g)]
            logger.warning(
                "%s: %d genes not shared with earlier samples dropped", name, before - len(genes)
            )
    if genes is None or len(genes) == 0:
        raise ValueError(
            "the samples share no genes: were they quantified against different references?"
        )
    return genes


ProteinPanel = Literal["union", "intersection"]


def protein_panel(names: Mapping[str, Sequence[str]], *, mode: ProteinPanel) -> list[str]:
    """The antibodies of a cohort from each sample's (``{sample: names}``, empty for a sample
    without antibody capture): every antibody any sample has (``union``, first-seen order) or
    those every sample has (``intersection``)."""
    lists = [list(n) for n in names.values()]
    if mode == "union":
        return list(dict.fromkeys(a for n in lists for a in n))
    if mode == "intersection":
        shared = set.intersection(*map(set, lists)) if lists else set()
        return [a for a in (lists[0] if lists else []) if a in shared]
    raise ValueError(f"unknown protein panel mode {mode!r} (union, intersection)")


def align_proteins(
    X: np.ndarray | None, names: Sequence[str], panel: Sequence[str], *, n_obs: int
) -> np.ndarray:
    """One sample's antibody counts ``X`` (cells × ``names``) on the cohort's ``panel``
    columns; an antibody the sample was not stained with is ``NaN`` (missing), not 0."""
    out = np.full((n_obs, len(panel)), np.nan, dtype=np.float32)
    if X is not None and len(names):
        col = {n: j for j, n in enumerate(names)}
        for k, name in enumerate(panel):
            if name in col:
                out[:, k] = np.asarray(X)[:, col[name]]
    return out
