"""Pseudobulk: raw counts summed per sample and cell type, for differential expression with
bulk methods (edgeR, DESeq2, limma-voom, PyDESeq2)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData


def pseudobulk(
    counts: sp.spmatrix | np.ndarray,
    labels: pd.DataFrame,
    var: pd.DataFrame,
    *,
    sample_id: str,
    group_keys: tuple[str, ...] = ("cell_type", "lineage"),
) -> AnnData:
    """Sum ``counts`` (cells × genes, raw) over the cells of each ``group_keys[0]`` value.

    ``labels`` holds one row per cell (in the order of ``counts``) with ``group_keys``; cells
    whose label is missing are left out. Returns groups × genes (integer counts) with
    ``obs``: ``sample_id``, the group keys, ``n_cells`` and ``total_counts``.

    Examples
    --------
    >>> pb = pseudobulk(adata.layers["counts"], adata.obs, adata.var, sample_id="S1")  # doctest: +SKIP
    """
    key = group_keys[0]
    if counts.shape[0] != len(labels):
        raise ValueError(f"{counts.shape[0]} cells in the counts but {len(labels)} labels")
    lab = labels[list(group_keys)].astype(str).reset_index(drop=True)
    keep = labels[key].notna().to_numpy()
    groups = pd.Index(sorted(lab.loc[keep, key].unique()), name=key)
    codes = groups.get_indexer(lab[key])
    codes[~keep] = -1
    rows = np.flatnonzero(codes >= 0)
    # indicator (groups × cells) @ counts: one sparse product, no dense cells × genes
    ind = sp.csr_matrix(
        (np.ones(len(rows), dtype=np.float64), (codes[rows], rows)),
        shape=(len(groups), counts.shape[0]),
    )
    summed = sp.csr_matrix(ind @ sp.csr_matrix(counts, dtype=np.float64))
    summed.data = np.rint(summed.data)
    summed = summed.astype(np.int64)
    first = lab.loc[rows].groupby(key, sort=True).first().reindex(groups)
    obs = pd.DataFrame(
        {
            "sample_id": sample_id,
            key: groups.astype(str),
            **{k: first[k].to_numpy() for k in group_keys[1:]},
            "n_cells": np.bincount(codes[rows], minlength=len(groups)),
            "total_counts": np.asarray(summed.sum(axis=1)).ravel().astype(np.int64),
        }
    )
    obs.index = [f"{sample_id}|{g}" for g in groups]
    return AnnData(X=summed, obs=obs, var=var.copy())


def marker_medians(
    X: np.ndarray, obs: pd.DataFrame, var: pd.DataFrame, *, modality: str
) -> pd.DataFrame:
    """Median of every marker (columns of ``X``, named by ``var``'s index, classed by
    ``var["marker_class"]``) per sample and cell type, in long format: ``sample_id,
    modality, panel_group, cell_type, marker, marker_class, median`` — the cytometry
    pseudobulk (``panel_group`` from ``obs`` when it has one: a sample stained with two
    panels has a median per panel group).

    Examples
    --------
    >>> marker_medians(X, adata.obs, adata.var, modality="cytof")  # doctest: +SKIP
    """
    df = pd.DataFrame(X, columns=list(var.index))
    df["sample_id"] = obs["sample_id"].astype(str).to_numpy()
    df["cell_type"] = obs["cell_type"].astype(str).to_numpy()
    med = df.groupby(["sample_id", "cell_type"], observed=True).median()
    long = med.reset_index().melt(
        id_vars=["sample_id", "cell_type"], var_name="marker", value_name="median"
    )
    long.insert(1, "modality", modality)
    group = (
        obs.groupby(obs["sample_id"].astype(str).to_numpy(), observed=True)["panel_group"]
        .first()
        .astype(str)
        if "panel_group" in obs
        else pd.Series(dtype=str)
    )
    long.insert(2, "panel_group", long["sample_id"].map(group).fillna(""))
    long.insert(5, "marker_class", var.loc[long["marker"], "marker_class"].to_numpy())
    long["median"] = long["median"].astype(float).round(5)
    return long.sort_values(["sample_id", "cell_type", "marker"], ignore_index=True)
