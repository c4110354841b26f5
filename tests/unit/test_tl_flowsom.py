"""FlowSOM fitted on a subsample, every event assigned."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

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


def test_value_categories_are_the_strings_of_the_values():
    from immunoprofiler.tl.flowsom import value_categories

    values = np.random.default_rng(3).integers(0, 120, 5_000)
    names, code = value_categories(120)
    expected = pd.Categorical(np.arange(120).astype(str))
    assert names == list(expected.categories) and code.dtype == np.int16
    assert (np.asarray(names)[code[values]] == values.astype(str)).all()


def test_som_grid_shrinks_for_small_groups_and_says_so():
    from immunoprofiler.failures import SampleError
    from immunoprofiler.tl.flowsom import som_grid

    assert som_grid(100_000, 10, 10) == (10, 10, "")
    assert som_grid(1_000, 10, 10) == (10, 10, "")  # 10 events a node: enough
    side, _, note = som_grid(170, 10, 10)
    assert side == int(np.sqrt(17)) == 4 and "reduced to 4×4" in note and "170 events" in note
    assert som_grid(5, 10, 10)[:2] == (2, 2)
    with pytest.raises(SampleError, match="too few to cluster"):
        som_grid(3, 10, 10)
