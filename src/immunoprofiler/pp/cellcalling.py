"""Cell calling on a raw (all barcodes) count matrix.

* ``inflection`` (default): on the log-log barcode-rank curve of barcodes above ``lower``
  UMIs, the steepest drop (DropletUtils' ``barcodeRanks`` inflection); barcodes at or
  above it are cells.
* ``knee``: the point of that curve farthest from the chord between its ends (Kneedle),
  a stricter threshold.
* ``expected``: Cell Ranger 2's rule: 10 % of the 99th percentile of the top
  ``expected_cells`` barcodes' totals.
* ``emptydrops``: barcodes above the inflection are cells; those between ``lower`` and it
  are tested against the ambient profile (barcodes ≤ ``lower``) with a multinomial
  Monte-Carlo test as in EmptyDrops (Lun et al. 2019), BH-adjusted, cells at FDR ≤ ``fdr``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.special import gammaln

logger = logging.getLogger(__name__)


def barcode_ranks(totals: np.ndarray, *, lower: int = 100) -> dict[str, float]:
    """Knee and inflection (UMI totals) of the barcode-rank curve."""
    t = np.sort(np.asarray(totals, dtype=np.float64))[::-1]
    t = t[t > lower]
    if len(t) < 3:
        return {"knee": np.inf, "inflection": np.inf}
    values, first = np.unique(t[::-1], return_index=True)  # ascending totals
    counts = np.diff(np.r_[first, len(t)])
    # rank of each distinct total (mid-rank of ties), on the descending curve
    rank = len(t) - first - (counts - 1) / 2.0
    x, y = np.log10(rank[::-1]), np.log10(values[::-1])
    if len(x) < 3:
        return {"knee": float(values[-1]), "inflection": float(values[-1])}
    d = np.abs((x[-1] - x[0]) * (y[0] - y) - (x[0] - x) * (y[-1] - y[0])) / np.hypot(
        x[-1] - x[0], y[-1] - y[0]
    )
    knee = 10 ** y[int(np.argmax(d))]
    slope = np.diff(y) / np.maximum(np.diff(x), 1e-12)
    infl = 10 ** y[int(np.argmin(slope)) + 1]
    return {"knee": float(knee), "inflection": float(infl)}


def _emptydrops(
    X: sp.csr_matrix,
    totals: np.ndarray,
    candidates: np.ndarray,
    *,
    lower: int,
    n_iter: int,
    seed: int,
) -> np.ndarray:
    """Monte-Carlo p-values of the candidates' profiles under the ambient multinomial."""
    ambient = np.asarray(X[totals <= lower].sum(axis=0)).ravel().astype(np.float64)
    if ambient.sum() == 0:
        raise ValueError(f"no ambient counts: no barcode has ≤ {lower} UMIs (emptydrops lower)")
    prob = (ambient + 0.5) / (ambient + 0.5).sum()  # pseudocount: genes unseen in ambient
    logp = np.log(prob)
    sub = X[candidates]
    # multinomial log-probability of each candidate's profile (log t! − Σ log x! + Σ x log p)
    lgx = sub.copy().astype(np.float64)
    lgx.data = gammaln(lgx.data + 1)
    obs = (
        gammaln(totals[candidates] + 1)
        - np.asarray(lgx.sum(axis=1)).ravel()
        + np.asarray(sub.multiply(logp[None, :]).sum(axis=1)).ravel()
    )
    tmax = int(totals[candidates].max())
    rng = np.random.default_rng(seed)
    counts = np.zeros((n_iter, len(prob)), dtype=np.int32)
    ll = np.zeros(n_iter)
    sims = np.empty((tmax + 1, n_iter))
    sims[0] = 0.0
    cdf = np.cumsum(prob)
    rows = np.arange(n_iter)
    for t in range(1, tmax + 1):  # add one molecule to every simulated profile
        g = np.minimum(np.searchsorted(cdf, rng.random(n_iter)), len(prob) - 1)
        ll += np.log(t) - np.log(counts[rows, g] + 1) + logp[g]
        counts[rows, g] += 1
        sims[t] = ll
    sims.sort(axis=1)
    tc = totals[candidates].astype(int)
    below = np.array(
        [np.searchsorted(sims[t], o, side="right") for t, o in zip(tc, obs, strict=True)]
    )
    return (below + 1) / (n_iter + 1)


def call_cells(
    X: sp.csr_matrix,
    *,
    method: str = "inflection",
    expected_cells: int | None = None,
    lower: int = 100,
    fdr: float = 0.01,
    n_iter: int = 1000,
    seed: int = 0,
) -> tuple[np.ndarray, dict[str, float]]:
    """Boolean cell mask over the barcodes (rows) of ``X`` and the thresholds used."""
    totals = np.asarray(X.sum(axis=1)).ravel()
    ranks = barcode_ranks(totals, lower=lower)
    info: dict[str, float] = {**ranks, "method": method}
    if method in ("inflection", "knee"):
        cells = totals >= ranks[method]
    elif method == "expected":
        if not expected_cells:
            raise ValueError("cell calling 'expected' needs rna.bam_count.expected_cells")
        top = np.sort(totals)[::-1][:expected_cells]
        threshold = max(np.percentile(top, 99) / 10.0, 1.0)
        info["threshold"] = float(threshold)
        cells = totals >= threshold
    elif method == "emptydrops":
        cells = totals >= ranks["inflection"]
        cand = np.flatnonzero((totals > lower) & ~cells)
        info["tested"] = len(cand)
        if len(cand):
            pval = _emptydrops(X, totals, cand, lower=lower, n_iter=n_iter, seed=seed)
            order = np.argsort(pval)
            q = pval[order] * len(pval) / np.arange(1, len(pval) + 1)
            q = np.minimum.accumulate(q[::-1])[::-1]
            sig = np.zeros(len(cand), dtype=bool)
            sig[order] = q <= fdr
            cells[cand[sig]] = True
            info["rescued"] = int(sig.sum())
    else:
        raise ValueError(
            f"unknown cell calling method {method!r} (inflection, knee, expected, emptydrops)"
        )
    info["cells"] = int(cells.sum())
    logger.info(
        "cell calling (%s): %d cells; knee %.0f, inflection %.0f UMIs",
        method,
        cells.sum(),
        ranks["knee"],
        ranks["inflection"],
    )
    return cells, info


def calling_summary(
    X: sp.csr_matrix, cells: np.ndarray, info: Mapping[str, Any], reads: Mapping[str, int]
) -> dict[str, Any]:
    """The summary row of a counted sample: the read counts ``reads`` (per filter category,
    with ``reads_counted``), barcodes, UMIs, cells and UMIs in them, median UMIs and genes per cell,
    sequencing saturation (1 − UMIs / counted reads) and the cell-calling thresholds."""
    umis_per_cell = np.asarray(X[cells].sum(axis=1)).ravel()
    genes_per_cell = np.diff(sp.csr_matrix(X[cells]).indptr)
    n_umis = int(X.sum())
    counted = reads["reads_counted"]
    return {
        **reads,
        "barcodes": int(X.shape[0]),
        "umis": n_umis,
        "cells": int(cells.sum()),
        "umis_in_cells": int(umis_per_cell.sum()),
        "median_umis_per_cell": float(np.median(umis_per_cell)) if len(umis_per_cell) else 0.0,
        "median_genes_per_cell": float(np.median(genes_per_cell)) if len(genes_per_cell) else 0.0,
        "sequencing_saturation": round(1 - n_umis / counted, 4) if counted else 0.0,
        "cell_calling": info["method"],
        "inflection": info["inflection"],
        "knee": info["knee"],
    }
