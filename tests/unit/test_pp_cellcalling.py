"""Cell calling on raw matrices with known cells."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from immunoprofiler.pp.cellcalling import barcode_ranks, call_cells


def raw_matrix(seed=0, n_cells=500, n_small=100, n_empty=5000, genes=300):
    rng = np.random.default_rng(seed)
    ambient = rng.dirichlet(np.full(genes, 0.5))
    cell_profile = rng.dirichlet(np.full(genes, 0.5))
    rows = [
        rng.multinomial(int(t), cell_profile) for t in rng.lognormal(np.log(3000), 0.4, n_cells)
    ]
    rows += [
        rng.multinomial(int(t), cell_profile) for t in rng.uniform(150, 300, n_small)
    ]  # small real cells
    rows += [rng.multinomial(int(t), ambient) for t in rng.integers(1, 60, n_empty)]
    rows += [rng.multinomial(int(t), ambient) for t in rng.uniform(150, 300, 50)]  # large empties
    truth = np.r_[np.ones(n_cells + n_small, bool), np.zeros(n_empty + 50, bool)]
    return sp.csr_matrix(np.array(rows)), truth, n_cells


def test_inflection_and_knee_find_the_cliff():
    X, truth, n_big = raw_matrix()
    ranks = barcode_ranks(np.asarray(X.sum(1)).ravel())
    assert ranks["inflection"] <= ranks["knee"]
    cells, info = call_cells(X)
    assert cells[:n_big].mean() > 0.97 and (cells & ~truth).sum() <= 60
    assert info["method"] == "inflection" and info["cells"] == cells.sum()


def test_expected_cells_rule():
    X, _, n_big = raw_matrix()
    cells, info = call_cells(X, method="expected", expected_cells=500)
    assert cells[:n_big].all() and info["threshold"] > 100
    with pytest.raises(ValueError, match="expected_cells"):
        call_cells(X, method="expected")


def test_emptydrops_rescues_small_cells_not_empties():
    X, truth, n_big = raw_matrix()
    totals = np.asarray(X.sum(1)).ravel()
    cells, info = call_cells(X, method="emptydrops", lower=100, n_iter=1000, seed=0)
    small = slice(n_big, n_big + 100)
    large_empty = slice(len(truth) - 50, len(truth))
    assert cells[small].mean() > 0.9, info
    assert cells[large_empty].mean() < 0.1, info
    assert info["tested"] > 0 and info["rescued"] > 50
    assert (totals[cells] > 100).all()
