"""FlowSOM fitted on a subsample, every event assigned."""

from __future__ import annotations

import numpy as np

from immunoprofiler.tl.flowsom import fit_som, flowsom


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


def test_flowsom_fits_on_an_even_subsample_of_the_files():
    rng = np.random.default_rng(1)
    files = np.repeat(["big", "small"], [20_000, 500])
    X = rng.normal(0, 1, (len(files), 4)).astype(np.float32)
    som, fit_idx = flowsom(
        X, files, xdim=5, ydim=5, n_metaclusters=3, rlen=5, fit_events=2_000, seed=0
    )
    assert len(fit_idx) == 2_000 and (files[fit_idx] == "small").sum() == 500
    assert som.codes.shape == (25, 4) and set(som.node_metacluster) <= {0, 1, 2}
