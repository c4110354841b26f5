"""Per-sample QC: metrics, MAD thresholds, doublets, samples without MT genes, too-few-cell failure."""

from __future__ import annotations

import numpy as np
import pytest

from immunoprofiler.datasets import simulate_pbmc
from immunoprofiler.io.tenx import read_rna
from immunoprofiler.pp.quality import QCError, gene_sets, mad_bounds, qc


def as_sample(a, sid="S1"):
    a = a.copy()
    a.layers["counts"] = a.X
    a.X = None
    return a


def test_mad_bounds_known_values():
    lo, hi = mad_bounds(np.array([1.0, 2.0, 3.0, 4.0, 100.0]), 2)
    assert (lo, hi) == (1.0, 5.0)  # median 3, MAD 1


def test_gene_sets():
    import pandas as pd

    s = gene_sets(pd.Index(["MT-CO1", "mt-Nd1", "RPL3", "RPS6", "HBB", "HBA1", "HBP1", "CD3E"]))
    assert list(s["mt"]) == [True, True, False, False, False, False, False, False]
    assert list(s["ribo"]) == [False, False, True, True, False, False, False, False]
    assert list(s["hb"]) == [False, False, False, False, True, True, False, False]


def test_qc_removes_damaged_empty_and_doublets():
    a = simulate_pbmc(1500, seed=3)
    kept, row, cells = qc(as_sample(a), sample_id="S1", seed=0)
    state = a.obs["true_state"]
    removed = ~cells["kept"]
    assert removed[state == "empty"].mean() == 1.0
    assert removed[state == "damaged"].mean() > 0.95
    assert removed[state == "doublet"].mean() > 0.5
    assert removed[state == "cell"].mean() < 0.15
    assert row["n_cells_before"] == 1500
    assert row["n_cells_after"] == kept.n_obs == cells["kept"].sum()
    assert row["n_cells_after"] == 1500 - row["n_qc_outliers"] - row["n_doublets"]
    assert row["max_pct_mt"] <= 20
    assert 0 < row["min_total_counts"] < row["median_total_counts"] < row["max_total_counts"]
    for col in ("pct_counts_mt", "pct_counts_ribo", "pct_counts_hb", "doublet_score"):
        assert col in kept.obs
    assert kept.X is None and "counts" in kept.layers


def test_qc_without_mt_genes(kang):
    a = read_rna(kang["ctrl"], sample_id="ctrl")
    kept, row, _ = qc(a, sample_id="ctrl", seed=0)
    assert not row["has_mt_genes"]
    assert (kept.obs["pct_counts_mt"] == 0).all()
    assert kept.n_obs > 850  # Kang is already cell-filtered


def test_too_few_cells_names_the_sample():
    a = simulate_pbmc(300, seed=1, frac_empty=0.0)
    with pytest.raises(
        QCError, match=r"sample 'tiny': only \d+ of 300 cells pass QC \(min_cells=5000"
    ):
        qc(as_sample(a), sample_id="tiny", min_cells=5000)


def test_qc_is_deterministic():
    a = as_sample(simulate_pbmc(800, seed=2))
    k1, r1, _ = qc(a.copy(), sample_id="S", seed=0)
    k2, r2, _ = qc(a.copy(), sample_id="S", seed=0)
    assert r1 == r2
    assert list(k1.obs_names) == list(k2.obs_names)


def test_zero_count_barcodes_are_removed_without_error():
    import scipy.sparse as sp

    a = simulate_pbmc(600, seed=4)
    X = a.X.tolil()
    X[:5] = 0  # five barcodes without a single UMI
    a.X = X.tocsr()
    kept, _, cells = qc(as_sample(a), sample_id="S0", seed=0)
    assert not cells["kept"].iloc[:5].any()
    assert np.isfinite(cells["pct_counts_mt"]).all()
    assert sp.issparse(kept.layers["counts"])
