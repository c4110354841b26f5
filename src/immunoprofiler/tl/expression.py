"""Pseudobulk differential expression per cell type (muscat-style, with PyDESeq2).

Raw counts summed per sample and cell type (:func:`immunoprofiler.tl.pseudobulk.pseudobulk`)
are tested per cell type between two groups of samples with DESeq2's negative binomial GLM
(PyDESeq2), the design shared with differential abundance and state (group, a block per
``paired_by`` value, covariates). Lowly expressed genes are filtered first as edgeR's
``filterByExpr`` does; a sample with fewer than ``min_cells`` cells of a type does not enter
that type's test. With fewer than two samples per group only effect sizes are reported.

``method="limma-trend"`` is muscat's other pseudobulk method (Crowell et al. 2020): edgeR's
log-CPM (prior count 3, library sizes from median-of-ratios size factors) in one linear model
per gene, variances moderated towards a trend on mean expression (limma ``eBayes(trend=TRUE)``).
It solves every gene at once, so it stays seconds where PyDESeq2's per-gene fits take minutes
(hundreds of samples; ``bench/state_bench.py``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData
from pydeseq2.default_inference import DefaultInference

from .differential import (
    _bh,
    design_matrix,
    moderated_t,
    require_pairs,
    select_samples,
    size_factors,
)

logger = logging.getLogger(__name__)

DE_COLUMNS = [
    "cell_type",
    "gene",
    "baseMean",
    "log2FoldChange",
    "lfcSE",
    "stat",
    "p_value",
    "q_value",
    "n_samples",
    "n_a",
    "n_b",
    "group_a",
    "group_b",
    "paired_by",
    "covariates",
    "note",
]


def filter_by_expr(
    counts: np.ndarray,
    min_group: int,
    *,
    min_count: float = 10,
    min_total_count: float = 15,
    large_n: int = 10,
    min_prop: float = 0.7,
) -> np.ndarray:
    """Genes (columns of ``counts``, samples × genes) worth testing, by edgeR's
    ``filterByExpr`` rule: at least ``min_count`` reads' worth of CPM (at the median library
    size) in as many samples as the smallest group (``min_group``; above ``large_n`` samples
    only ``min_prop`` of the extra ones), and ``min_total_count`` reads in all.

    Examples
    --------
    >>> filter_by_expr(np.array([[0, 50], [1, 60], [0, 40]]), 1).tolist()
    [False, True]
    """
    counts = np.asarray(counts, dtype=float)
    lib = counts.sum(axis=1)
    if not len(lib) or lib.max() <= 0:
        return np.zeros(counts.shape[1], dtype=bool)
    median = np.median(lib[lib > 0])
    cutoff = min_count / median * 1e6
    cpm = counts / np.maximum(lib, 1)[:, None] * 1e6
    need = min_group if min_group <= large_n else large_n + (min_group - large_n) * min_prop
    enough = (cpm >= cutoff).sum(axis=0) >= need - 1e-14
    return enough & (counts.sum(axis=0) >= min_total_count - 1e-14)


class _Inference(DefaultInference):
    """PyDESeq2's default inference, with its one per-gene step that is plain least squares
    (the starting means, ``lin_reg_mu``: one scikit-learn fit per gene, a third of the run on
    a small design) solved for all genes at once: the same fits (tested), the rest as is."""

    def lin_reg_mu(self, counts, size_factors, design_matrix, min_mu):
        sf = np.asarray(size_factors, dtype=float)[:, None]
        beta = np.linalg.lstsq(design_matrix, counts / sf, rcond=None)[0]
        return np.maximum(sf * (design_matrix @ beta), min_mu)


def limma_trend(
    counts: pd.DataFrame,
    meta: pd.DataFrame,
    *,
    column: str,
    test_group: str,
    paired_by: str | None = None,
    covariates: Sequence[str] = (),
    prior_count: float = 3.0,
) -> pd.DataFrame:
    """limma-trend on one cell type's pseudobulk (samples × genes, raw counts): edgeR's
    ``cpm(log=TRUE, prior.count)`` with median-of-ratios library sizes, one linear model per
    gene on the shared design, ``eBayes(trend=TRUE)``. ``log2FoldChange`` is the log2-CPM
    difference, ``lfcSE`` its moderated standard error, ``stat`` the moderated t."""
    C = counts.to_numpy(float)
    sf = size_factors(counts).to_numpy()
    lib = sf * np.exp(np.mean(np.log(np.maximum(C.sum(axis=1), 1.0))))
    prior = prior_count * lib / lib.mean()
    logcpm = np.log2((C + prior[:, None]) / (lib + 2 * prior)[:, None] * 1e6)
    X = design_matrix(meta, column, test_group, paired_by, covariates)
    fit = moderated_t(logcpm, X, coef=1, trend=logcpm.mean(axis=0))
    with np.errstate(divide="ignore", invalid="ignore"):
        se = np.abs(fit["coef"].to_numpy() / fit["t"].to_numpy())
    return pd.DataFrame(
        {
            "gene": counts.columns.astype(str),
            "baseMean": (C / sf[:, None]).mean(axis=0),
            "log2FoldChange": fit["coef"].to_numpy(),
            "lfcSE": se,
            "stat": fit["t"].to_numpy(),
            "p_value": fit["p_value"].to_numpy(),
        }
    )


def _safe(names: Sequence[str]) -> dict[str, str]:
    """Sheet columns → formula-safe names (``f0``, ``f1``...)."""
    return {n: f"f{i}" for i, n in enumerate(names)}


def differential_expression(
    counts: pd.DataFrame,
    meta: pd.DataFrame,
    *,
    column: str,
    groups: Sequence[str],
    paired_by: str | None = None,
    covariates: Sequence[str] = (),
    threads: int = 1,
    method: str = "deseq2",
) -> pd.DataFrame:
    """One cell type's pseudobulk (samples × genes, raw counts; ``meta`` the samples'
    sheet rows, already those the contrast compares) between ``groups[0]`` (a) and
    ``groups[1]`` (b). Genes filtered by :func:`filter_by_expr`; PyDESeq2 (``method``
    ``deseq2``) or :func:`limma_trend` with the design
    ``~ paired_by + covariates + column`` when both groups have two samples, else the log2
    ratio of the groups' mean normalised counts (median-of-ratios size factors, +1) with no
    test. Returns ``gene, baseMean, log2FoldChange, lfcSE, stat, p_value`` for the genes
    kept."""
    ga, gb = (str(g) for g in groups)
    is_b = (meta[column].astype(str) == gb).to_numpy()
    n_min = int(min(is_b.sum(), (~is_b).sum()))
    keep = filter_by_expr(counts.to_numpy(), max(n_min, 1))
    counts = counts.loc[:, keep]
    cols = ["gene", "baseMean", "log2FoldChange", "lfcSE", "stat", "p_value"]
    if not counts.shape[1]:
        return pd.DataFrame(columns=cols)
    if n_min >= 2 and method == "limma-trend":
        return limma_trend(
            counts, meta, column=column, test_group=gb, paired_by=paired_by, covariates=covariates
        )
    if n_min >= 2:
        from pydeseq2.dds import DeseqDataSet
        from pydeseq2.ds import DeseqStats

        terms = [*([paired_by] if paired_by else []), *covariates, column]
        names = _safe(terms)
        md = pd.DataFrame(
            {names[t]: meta[t].astype(str).to_numpy() for t in terms}, index=counts.index
        )
        design = "~" + " + ".join(names[t] for t in terms)
        inference = _Inference(n_cpus=threads)
        dds = DeseqDataSet(
            counts=counts.astype(np.int64),
            metadata=md,
            design=design,
            inference=inference,
            quiet=True,
        )
        dds.deseq2()
        stats = DeseqStats(
            dds,
            contrast=[names[column], gb, ga],
            independent_filter=False,
            inference=inference,
            quiet=True,
        )
        stats.summary()
        res = stats.results_df
        return pd.DataFrame(
            {
                "gene": res.index.astype(str),
                "baseMean": res["baseMean"].to_numpy(),
                "log2FoldChange": res["log2FoldChange"].to_numpy(),
                "lfcSE": res["lfcSE"].to_numpy(),
                "stat": res["stat"].to_numpy(),
                "p_value": res["pvalue"].to_numpy(),
            }
        )
    sf = size_factors(counts).to_numpy() if counts.shape[0] > 1 else np.ones(1)
    norm = counts.to_numpy(float) / sf[:, None]
    mean_a = norm[~is_b].mean(axis=0) if (~is_b).any() else np.full(norm.shape[1], np.nan)
    mean_b = norm[is_b].mean(axis=0) if is_b.any() else np.full(norm.shape[1], np.nan)
    return pd.DataFrame(
        {
            "gene": counts.columns.astype(str),
            "baseMean": norm.mean(axis=0),
            "log2FoldChange": np.log2((mean_b + 1) / (mean_a + 1)),
            "lfcSE": np.nan,
            "stat": np.nan,
            "p_value": np.nan,
        }
    )


def differential_expression_table(
    pseudobulk: AnnData,
    samples: pd.DataFrame,
    *,
    column: str,
    groups: Sequence[str],
    paired_by: str | None = None,
    covariates: Sequence[str] = (),
    min_cells: int = 10,
    threads: int = 1,
    method: str = "deseq2",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per cell type, :func:`differential_expression` of the pseudobulk rows (``pseudobulk``:
    (sample, cell type) rows × genes, raw counts, sparse or dense; ``obs``: ``sample_id``,
    ``cell_type``, ``n_cells``), BH q-values per cell type. One cell type's rows are made
    dense at a time.

    Returns the results (:data:`DE_COLUMNS`, sorted by cell type and p-value) and the
    design table: one row per cell type × sample with its cells and whether (or why not)
    it entered the test — nothing is left out silently.
    """
    tables, used, unpaired_only = [], [], []
    obs = pseudobulk.obs.reset_index(drop=True)
    genes = pseudobulk.var_names.astype(str)
    for cell_type, rows in obs.groupby("cell_type", sort=True, observed=True):
        by_sample = rows.set_index("sample_id")
        meta, unpaired = select_samples(
            samples.loc[samples.index.isin(by_sample.index)],
            column,
            groups,
            paired_by=paired_by,
            covariates=covariates,
        )
        few = by_sample.index[by_sample["n_cells"] < min_cells]
        for s, n in by_sample["n_cells"].items():
            why = (
                "in the test"
                if s in meta.index and s not in few
                else f"fewer than {min_cells} cells"
                if s in meta.index
                else "no partner in the other group"
                if s in unpaired
                else "not in the contrast's groups"
            )
            used.append({"cell_type": cell_type, "sample_id": s, "n_cells": int(n), "use": why})
        meta = meta.loc[~meta.index.isin(few)]
        if paired_by:  # a pair that lost one side to the cell filter goes too
            meta, more = select_samples(meta, column, groups, paired_by=paired_by)
            for u in used[-len(by_sample) :]:
                if u["sample_id"] in more:
                    u["use"] = "its partner has too few cells"
        is_b = (meta[column].astype(str) == str(groups[1])).to_numpy()
        n_a, n_b = int((~is_b).sum()), int(is_b.sum())
        note = ""
        if min(n_a, n_b) < 2:
            note = (
                f"not tested: {n_a} {groups[0]} and {n_b} {groups[1]} samples "
                "(at least 2 per group are needed): effect sizes only"
            )
        if paired_by and unpaired and not len(meta):
            note = (
                f"not tested: none of the {len(unpaired)} sample(s) has a partner by "
                f"'{paired_by}' in the other group"
            )
            unpaired_only.append(str(cell_type))
        if min(n_a, n_b) < 1:
            res = pd.DataFrame(columns=DE_COLUMNS)
        else:
            take = rows.index[rows["sample_id"].isin(meta.index)].to_numpy()
            X = pseudobulk.X[take]
            mat = pd.DataFrame(
                X.toarray() if sp.issparse(X) else np.asarray(X),
                index=rows.loc[take, "sample_id"].astype(str).to_numpy(),
                columns=genes,
            )
            res = differential_expression(
                mat.loc[meta.index],
                meta,
                column=column,
                groups=groups,
                paired_by=paired_by,
                covariates=covariates,
                threads=threads,
                method=method,
            )
        if not len(res):  # one row that says why the type has no genes in the table
            if min(n_a, n_b) >= 1:
                note = "; ".join(filter(None, [note, "no gene passes the expression filter"]))
            res = pd.DataFrame({"gene": [np.nan]}).reindex(columns=res.columns)
        if note:
            logger.warning("differential expression, %s: %s", cell_type, note)
        tables.append(
            res.assign(
                cell_type=cell_type,
                q_value=_bh(res["p_value"].to_numpy(float)) if len(res) else [],
                n_samples=n_a + n_b,
                n_a=n_a,
                n_b=n_b,
                group_a=str(groups[0]),
                group_b=str(groups[1]),
                paired_by=paired_by or "",
                covariates=",".join(covariates),
                note=note,
            )
        )
    require_pairs("differential expression", unpaired_only, len(tables), groups, paired_by)
    out = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
    out = out.reindex(columns=DE_COLUMNS)
    # tested genes by p-value; untested ones (effect sizes only) by the size of the change
    order = out.assign(_size=-out["log2FoldChange"].abs())
    out = out.loc[order.sort_values(["cell_type", "p_value", "_size"]).index]
    out = out.reset_index(drop=True)
    return out, pd.DataFrame(used, columns=["cell_type", "sample_id", "n_cells", "use"])
