"""Cohort normalisation: shifted-log counts and batch-aware highly variable genes.

The rule function (:func:`immunoprofiler.pipeline.rna_normalize`) feeds the HVG statistics
one block of a batch's rows at a time and writes the normalised cohort from its samples'
counts read lazily (dask; :func:`normalize` is scanpy's ``normalize_total`` and ``log1p``),
so memory is bounded by a block of cells, not by a sample, a batch or the cohort. The HVG
selection reproduces ``scanpy.pp.highly_variable_genes(flavor="seurat_v3", batch_key=...)``: :func:`hvg_stats`
computes each batch's normalised variances as scanpy does (two passes over blocks), and
:func:`combine_hvg` ranks them across batches exactly as scanpy does.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Literal

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

logger = logging.getLogger(__name__)

#: the obs column (sheet column) that names a sample's processing batch
BATCH_KEY = "batch"


def normalize(adata: ad.AnnData, *, target_sum: float = 1e4) -> None:
    """Shifted-log normalisation of ``layers["counts"]`` into ``X`` (float32), in place, by
    scanpy's ``normalize_total`` and ``log1p``: in memory, or a dask array read lazily (then
    nothing is computed until the result is written, one block of cells at a time).

    ``X = log1p(counts / total * target_sum)``. A fixed ``target_sum`` keeps samples
    that are normalised separately on one scale.
    """
    import scanpy as sc

    adata.X = adata.layers["counts"].astype(np.float32)  # a copy: the counts stay untouched
    sc.pp.normalize_total(adata, target_sum=target_sum)
    sc.pp.log1p(adata)


Blocks = Callable[[], Iterable[sp.spmatrix | np.ndarray]]


def _gene_sums(
    blocks: Blocks, n_genes: int, clip: np.ndarray | None = None
) -> tuple[int, np.ndarray, np.ndarray]:
    """Cells, and per gene the sum and sum of squares of the counts (each count clipped at
    its gene's ``clip`` when given), in float64 over every block of ``blocks()``."""
    n, s1, s2 = 0, np.zeros(n_genes), np.zeros(n_genes)
    for block in blocks():
        n += block.shape[0]
        if sp.issparse(block):
            b = sp.csr_matrix(block)
            x = b.data.astype(np.float64)
            if clip is not None:
                np.minimum(x, clip[b.indices], out=x)
            s1 += np.bincount(b.indices, weights=x, minlength=n_genes)
            s2 += np.bincount(b.indices, weights=x * x, minlength=n_genes)
        else:
            x = np.asarray(block, dtype=np.float64)
            if clip is not None:
                x = np.minimum(x, clip)
            s1 += x.sum(axis=0)
            s2 += (x * x).sum(axis=0)
    return n, s1, s2


def hvg_stats(
    counts: Blocks | ad.AnnData | sp.spmatrix | np.ndarray,
    *,
    n_genes: int | None = None,
    span: float = 0.3,
) -> pd.DataFrame:
    """Per-gene ``means``, ``variances`` and ``variances_norm`` of one batch, as scanpy's
    ``highly_variable_genes(flavor="seurat_v3")`` computes them, in two passes over row blocks.

    ``counts`` is the batch's count matrix, or a callable returning an iterable of its row
    blocks (called twice; ``n_genes`` then says how many columns): memory is one block and
    a few per-gene vectors whatever the batch size. Pass 1 gives each gene's mean and
    variance, a loess fit of log variance on log mean (degree 2, ``span``) its expected
    standard deviation σ; pass 2 sums the counts clipped at ``mean + σ√n`` and their squares,
    whence the variance of the standardised, clipped counts.
    """
    from skmisc.loess import loess

    if not callable(counts):
        matrix = counts.X if isinstance(counts, ad.AnnData) else counts
        n_genes = matrix.shape[1]
        counts = lambda: [matrix]  # noqa: E731
    elif n_genes is None:
        raise ValueError("n_genes is required when counts are given as blocks")
    n, s1, s2 = _gene_sums(counts, n_genes)
    if n < 2:
        raise ValueError(f"a batch needs at least 2 cells for HVG statistics, got {n}")
    mean = s1 / n
    var = (s2 / n - mean**2) * (n / (n - 1))  # ddof=1, as scanpy
    not_const = var > 0
    fitted = np.zeros(n_genes)
    model = loess(np.log10(mean[not_const]), np.log10(var[not_const]), span=span, degree=2)
    model.fit()
    fitted[not_const] = model.outputs.fitted_values
    reg_std = np.sqrt(10**fitted)
    _, c1, c2 = _gene_sums(counts, n_genes, clip=reg_std * np.sqrt(n) + mean)
    norm = (n * mean**2 + c2 - 2 * c1 * mean) / ((n - 1) * reg_std**2)
    return pd.DataFrame({"means": mean, "variances": var, "variances_norm": norm, "n_cells": n})


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
