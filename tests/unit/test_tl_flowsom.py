"""FlowSOM fitted on a subsample, every event assigned."""

from __future__ import annotations

import numpy as np

from immunoprofiler.tl.flowsom import balanced_subsample, fit_som


def test_balanced_subsample_is_even_seeded_and_sorted():
    groups = np.repeat(["a", "b", "c"], [10, 1000, 5000])
    idx = balanced_subsample(groups, 300, seed=0)
    assert len(idx) == 300 and (np.diff(idx) > 0).all()
    counts = {g: (groups[idx] == g).sum() for g in "abc"}
    assert counts == {"a": 10, "b": 145, "c": 145}
    np.testing.assert_array_equal(idx, balanced_subsample(groups, 300, seed=0))
    assert len(balanced_subsample(groups, 10_000, seed=0)) == len(groups)


def test_som_separates_populations_and_is_reproducible():
    rng = np.random.default_rng(0)
    centers = rng.normal(0, 4, (4, 6))
    truth = rng.integers(0, 4, 8000)
    X = (centers[truth] + rng.normal(0, 0.5, (8000, 6))).astype(np.float32)
    som = fit_som(X[:3000], xdim=6, ydim=6, n_metaclusters=4, seed=1)
    nodes, meta = som.assign(X)
    assert som.codes.shape == (36, 6) and meta.max() < 4
    purity = sum(np.bincount(truth[meta == m]).max() for m in np.unique(meta)) / len(X)
    assert purity > 0.98
    again = fit_som(X[:3000], xdim=6, ydim=6, n_metaclusters=4, seed=1)
    np.testing.assert_array_equal(again.assign(X)[0], nodes)
