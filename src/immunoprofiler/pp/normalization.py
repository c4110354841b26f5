"""Cohort normalisation: shifted-log counts and batch-aware highly variable genes.

The cohort is processed one batch (for HVG statistics) and one sample (for
writing) at a time, so memory is bounded by the largest batch, not the cohort.
The HVG selection reproduces ``scanpy.pp.highly_variable_genes(flavor="seurat_v3",
batch_key=...)``: scanpy computes each batch's normalised variances, and
:func:`combine_hvg` ranks them across batches exactly as scanpy does.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd
import scanpy as sc
import scipy.sparse as sp

from .. import provenance
from ..io.h5ad import StreamedH5ad, read_obs, read_uns, read_var

logger = logging.getLogger(__name__)


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


def _load(path: str | Path, genes: pd.Index | None) -> ad.AnnData:
    a = ad.read_h5ad(path)
    if genes is not None and not a.var_names.equals(genes):
        a = a[:, genes].copy()
    return a


def common_genes(paths: Sequence[str | Path]) -> pd.Index:
    """Genes present in every sample (in the order of the first); raise if none are shared."""
    genes: pd.Index | None = None
    for p in paths:
        g = read_var(p).index
        if genes is None:
            genes = g
        elif not g.equals(genes):
            before = len(genes)
            genes = genes[genes.isin(g)]
            logger.warning(
                "%s: %d genes not shared with earlier samples dropped", p, before - len(genes)
            )
    if genes is None or len(genes) == 0:
        raise ValueError(
            "the samples share no genes: were they quantified against different references?"
        )
    return genes


def normalize_cohort(
    paths: Sequence[str | Path],
    *,
    out: str | Path,
    out_hvg: str | Path,
    batch_key: str = "batch",
    n_top_genes: int = 2000,
    target_sum: float = 1e4,
    span: float = 0.3,
) -> pd.DataFrame:
    """Normalise a cohort of per-sample files into one file, plus an HVG-only file.

    Parameters
    ----------
    paths
        Per-sample ``.h5ad`` after QC (counts in ``layers["counts"]``; ``obs[batch_key]``).
    out
        Cohort file: ``layers["counts"]``, ``X`` shifted-log, ``var`` with HVG flags.
    out_hvg
        The same cells restricted to the highly variable genes (input of integration).

    Returns
    -------
    The ``var`` table written (HVG statistics and flags).
    """
    genes = common_genes(paths)
    batch_of: dict[str, list[str | Path]] = {}
    for p in paths:
        batches = read_obs(p)[batch_key].astype(str).unique()
        if len(batches) != 1:
            raise ValueError(
                f"{p}: expected one value of '{batch_key}' per sample, got {list(batches)}"
            )
        batch_of.setdefault(batches[0], []).append(p)

    stats: dict[str, pd.DataFrame] = {}
    for batch, files in batch_of.items():
        parts = [_load(p, genes) for p in files]
        counts = sp.vstack([sp.csr_matrix(a.layers["counts"]) for a in parts], format="csr")
        del parts
        stats[batch] = hvg_stats(counts, n_top_genes=n_top_genes, span=span).set_axis(genes)
        logger.info("batch %s: %d cells, HVG statistics done", batch, counts.shape[0])
        del counts
    var = combine_hvg(stats, n_top_genes=n_top_genes)
    hvg = var.index[var["highly_variable"].to_numpy()]
    first = read_var(
        paths[0]
    )  # gene annotation of the first sample (per-sample QC stats are not carried)
    keep = [c for c in ("gene_ids", "feature_types", "mt", "ribo", "hb") if c in first.columns]
    var = var.join(first[keep].reindex(var.index))

    prov = provenance.merge(read_uns(p).get("provenance", {}) for p in paths)
    uns: dict[str, Any] = {
        "provenance": prov,
        "hvg": {"flavor": "seurat_v3", "batch_key": batch_key},
    }
    proteins = {tuple(read_uns(p).get("protein_names", [])) for p in paths}
    if len(proteins) == 1 and (names := next(iter(proteins))):
        uns["protein_names"] = list(names)
    params = {
        "batch_key": batch_key,
        "n_top_genes": n_top_genes,
        "target_sum": target_sum,
        "span": span,
    }
    tmp = ad.AnnData(uns=dict(uns))
    provenance.record(tmp, "rna_normalize", params=params)
    uns["provenance"] = tmp.uns["provenance"]

    # one pass over the samples writes both files
    with (
        StreamedH5ad(out, var=var, uns=uns) as full,
        StreamedH5ad(out_hvg, var=var.loc[hvg], uns=uns) as small,
    ):
        for p in paths:
            a = _load(p, genes)
            normalize(a, target_sum=target_sum)
            full.append(a)
            h = a[:, hvg].copy()
            h.obsm.pop("protein", None)  # the HVG file is the integration input: genes only
            small.append(h)
            del a, h
    logger.info("cohort: %d genes, %d highly variable", len(var), len(hvg))
    return var
