"""Per-sample quality control: QC metrics, MAD outliers, doublets (scrublet)."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
import scanpy as sc
from anndata import AnnData
from scipy.stats import median_abs_deviation

from ..failures import SampleError

logger = logging.getLogger(__name__)


QC_COLUMNS = (
    "total_counts",
    "n_genes_by_counts",
    "pct_counts_mt",
    "pct_counts_ribo",
    "pct_counts_hb",
)


class QCError(SampleError):
    """A sample cannot pass quality control (e.g. too few cells left)."""


def gene_sets(var_names: pd.Index) -> dict[str, np.ndarray]:
    """Boolean masks of mitochondrial, ribosomal and haemoglobin genes (human and mouse symbols)."""
    upper = var_names.str.upper()
    return {
        "mt": upper.str.startswith("MT-"),
        "ribo": upper.str.startswith(("RPS", "RPL")),
        "hb": upper.str.contains(r"^HB[^(P)]", regex=True),
    }


def mad_bounds(values: np.ndarray, n_mads: float) -> tuple[float, float]:
    """``median ± n_mads * MAD`` (unscaled MAD, as in single-cell best practice)."""
    med = float(np.median(values))
    mad = float(median_abs_deviation(values))
    return med - n_mads * mad, med + n_mads * mad


def qc(
    adata: AnnData,
    *,
    sample_id: str,
    n_mads_counts: float = 5.0,
    n_mads_genes: float = 5.0,
    n_mads_mt: float = 3.0,
    max_pct_mt: float = 20.0,
    min_genes: int = 100,
    min_cells: int = 50,
    doublets: bool = True,
    remove_doublets: bool = True,
    expected_doublet_rate: float = 0.06,
    min_cells_scrublet: int = 100,
    scrublet_exact_below: int = 100_000,
    seed: int = 0,
) -> tuple[AnnData, dict[str, Any], pd.DataFrame]:
    """Compute QC metrics, drop outlier cells and doublets in one sample.

    Cells are outliers when ``log1p(total_counts)`` or ``log1p(n_genes_by_counts)``
    lie more than ``n_mads_*`` median absolute deviations from the sample's median,
    when ``pct_counts_mt`` exceeds ``median + n_mads_mt * MAD`` or the hard cap
    ``max_pct_mt``, or when fewer than ``min_genes`` genes are detected. A metric whose MAD
    is 0 (e.g. no mitochondrial genes in the matrix) flags nothing. Doublets are
    scored and called by scrublet on the cells that pass, per sample, with exact
    neighbours below ``scrublet_exact_below`` cells and approximate ones above.

    Parameters
    ----------
    adata
        One sample, raw counts in ``layers["counts"]``. It is filtered in place (to keep
        one copy of the matrix in memory) and returned as the first element.
    sample_id
        Named in messages and in the summary row.

    Returns
    -------
    The filtered sample (QC metrics in ``obs``: ``total_counts``, ``n_genes_by_counts``,
    ``pct_counts_mt/ribo/hb``, ``doublet_score``, ``predicted_doublet``), the
    summary row for ``results/qc/rna_qc.tsv`` and the per-barcode table of every
    cell before filtering (metrics, ``qc_outlier``, ``predicted_doublet``, ``kept``).

    Raises
    ------
    QCError
        If fewer than ``min_cells`` cells remain.

    Examples
    --------
    >>> filtered, row, cells = qc(adata, sample_id="P1")  # doctest: +SKIP
    """
    counts = adata.layers["counts"]
    sets = gene_sets(adata.var_names)
    for k, mask in sets.items():
        adata.var[k] = np.asarray(mask)
    adata.X = counts
    sc.pp.calculate_qc_metrics(
        adata, qc_vars=list(sets), percent_top=None, log1p=True, inplace=True
    )
    obs = adata.obs
    for k in sets:  # barcodes without any count: 0 %, not NaN (NaN would disable the MAD filter)
        obs[f"pct_counts_{k}"] = obs[f"pct_counts_{k}"].fillna(0.0)
    lo_c, hi_c = mad_bounds(obs["log1p_total_counts"].to_numpy(), n_mads_counts)
    lo_g, hi_g = mad_bounds(obs["log1p_n_genes_by_counts"].to_numpy(), n_mads_genes)
    _, hi_mt_mad = mad_bounds(obs["pct_counts_mt"].to_numpy(), n_mads_mt)
    mt_mad = median_abs_deviation(obs["pct_counts_mt"].to_numpy())
    hi_mt = min(hi_mt_mad, max_pct_mt) if mt_mad > 0 else max_pct_mt
    if not sets["mt"].any():
        logger.warning("sample %s: no mitochondrial (MT-) genes; mito QC is a no-op", sample_id)
    outlier = (
        (obs["log1p_total_counts"] < lo_c)
        | (obs["log1p_total_counts"] > hi_c)
        | (obs["log1p_n_genes_by_counts"] < lo_g)
        | (obs["log1p_n_genes_by_counts"] > hi_g)
        | (obs["pct_counts_mt"] > hi_mt)
        | (obs["n_genes_by_counts"] < min_genes)
    )
    obs["qc_outlier"] = outlier.to_numpy()
    cells = obs[[*QC_COLUMNS, "qc_outlier"]].copy()
    n_before = adata.n_obs
    # filter in place (as scanpy.pp.filter_cells does): the unfiltered matrix is freed here
    adata.X = None
    adata._inplace_subset_obs(~outlier.to_numpy())
    kept = adata

    n_doublets = 0
    doublet_threshold = float("nan")
    kept.obs["doublet_score"] = np.nan
    kept.obs["predicted_doublet"] = False
    if doublets and kept.n_obs >= min_cells_scrublet:
        # scrublet copies what it is given: give it the counts alone, not the whole AnnData
        light = AnnData(X=kept.layers["counts"], obs=pd.DataFrame(index=kept.obs_names))
        sc.pp.scrublet(
            light,
            expected_doublet_rate=expected_doublet_rate,
            # exact neighbours (scikit-learn) are ~4x faster than pynndescent up to ~100k cells
            # and need no per-process numba compilation
            use_approx_neighbors=kept.n_obs >= scrublet_exact_below,
            random_state=seed,
            verbose=False,
        )
        kept.obs["doublet_score"] = light.obs["doublet_score"].to_numpy()
        kept.obs["predicted_doublet"] = light.obs["predicted_doublet"].to_numpy().astype(bool)
        n_doublets = int(kept.obs["predicted_doublet"].sum())
        doublet_threshold = float(light.uns["scrublet"].get("threshold", np.nan))
        del light
    elif doublets:
        logger.warning(
            "sample %s: %d cells is too few for scrublet (min %d); doublets not scored",
            sample_id,
            kept.n_obs,
            min_cells_scrublet,
        )
    kept_scores = kept.obs["doublet_score"].copy()
    called = kept.obs_names[kept.obs["predicted_doublet"].to_numpy()]
    if remove_doublets:
        kept._inplace_subset_obs(~kept.obs["predicted_doublet"].to_numpy())

    row: dict[str, Any] = {
        "sample_id": sample_id,
        "n_cells_before": int(n_before),
        "n_qc_outliers": int(outlier.sum()),
        "n_doublets": n_doublets,
        "n_cells_after": int(kept.n_obs),
        "min_total_counts": float(np.expm1(lo_c)),
        "max_total_counts": float(np.expm1(hi_c)),
        "min_n_genes": float(max(np.expm1(lo_g), min_genes)),
        "max_n_genes": float(np.expm1(hi_g)),
        "max_pct_mt": float(hi_mt),
        "doublet_threshold": doublet_threshold,
        "has_mt_genes": bool(sets["mt"].any()),
        "median_total_counts": float(kept.obs["total_counts"].median()) if kept.n_obs else 0.0,
        "median_n_genes": float(kept.obs["n_genes_by_counts"].median()) if kept.n_obs else 0.0,
        "median_pct_mt": float(kept.obs["pct_counts_mt"].median()) if kept.n_obs else 0.0,
    }
    logger.info("sample %s QC: %s", sample_id, row)
    if kept.n_obs < min_cells:
        raise QCError(
            f"sample '{sample_id}': only {kept.n_obs} of {n_before} cells pass QC "
            f"(min_cells={min_cells}; thresholds: total counts {row['min_total_counts']:.0f}-"
            f"{row['max_total_counts']:.0f}, genes {row['min_n_genes']:.0f}-{row['max_n_genes']:.0f}, "
            f"pct mito <= {hi_mt:.1f}; {n_doublets} doublets)"
        )
    kept.uns["qc"] = {k: v for k, v in row.items() if not isinstance(v, bool)}
    cells["doublet_score"] = kept_scores.reindex(cells.index)
    cells["predicted_doublet"] = cells.index.isin(called)
    cells["kept"] = cells.index.isin(kept.obs_names)
    return kept, row, cells
