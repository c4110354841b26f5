"""Quantile batch normalisation and the between-batch distances."""

from __future__ import annotations

import numpy as np
import pytest

from immunoprofiler.pp.batchnorm import (
    QuantileModel,
    applicable_method,
    apply_quantiles,
    batch_distance_table,
    batch_distances,
    emd_improved,
    fit_quantiles,
    nearest,
)


def _batches(seed=0):
    rng = np.random.default_rng(seed)
    base = lambda n: np.column_stack([rng.normal(2, 1, n), rng.gamma(2, 1, n)])  # noqa: E731
    X = np.vstack([base(4000), base(4000) * 1.3 + 0.5, base(4000) * 0.8 - 0.2])
    b = np.repeat(["a", "b", "c"], 4000)
    return X.astype(np.float32), b


def test_quantile_normalisation_aligns_batches_and_is_monotone():
    X, b = _batches()
    model = fit_quantiles(X, b, markers=["m1", "m2"])
    out = np.vstack([apply_quantiles(model, X[b == k], k) for k in "abc"])
    before = batch_distances(X, b, markers=["m1", "m2"])
    after = batch_distances(out, b, markers=["m1", "m2"])
    assert (after["emd"].to_numpy() < 0.25 * before["emd"].to_numpy()).all()
    for k in "abc":  # order within a batch is kept
        x = X[b == k, 0]
        y = apply_quantiles(model, X[b == k], k)[:, 0]
        assert (np.diff(y[np.argsort(x)]) >= -1e-5).all()


def test_values_beyond_the_fitted_range_are_shifted_not_clamped():
    X, b = _batches()
    model = fit_quantiles(X, b, markers=["m1", "m2"])
    far = np.array([[100.0, 100.0]], dtype=np.float32)
    y = apply_quantiles(model, far, "b")
    shift = model.target[0][-1] - model.quantiles["b"][0][-1]
    np.testing.assert_allclose(y[0], far[0] + shift, rtol=1e-5)


def test_model_round_trips_through_json_and_refuses_unknown_batch():
    X, b = _batches()
    codes = np.array([[0.0, 0.0], [5.0, 5.0]])
    clusters = nearest(X, codes)
    model = fit_quantiles(
        X,
        b,
        markers=["m1", "m2"],
        clusters=clusters,
        codes=codes,
        code_cluster=np.array([0, 1]),
        cluster_markers=[0, 1],
        n_clusters=2,
    )
    again = QuantileModel.from_dict(model.to_dict())
    np.testing.assert_array_equal(
        apply_quantiles(model, X[:50], "a"), apply_quantiles(again, X[:50], "a")
    )
    with pytest.raises(KeyError, match="not seen"):
        apply_quantiles(model, X[:5], "z")


def test_nearest_matches_brute_force():
    rng = np.random.default_rng(1)
    X, C = rng.normal(size=(500, 4)), rng.normal(size=(7, 4))
    brute = np.argmin(((X[:, None, :] - C[None]) ** 2).sum(-1), axis=1)
    np.testing.assert_array_equal(nearest(X, C, chunk=64), brute)


def test_one_batch_is_not_normalised_and_says_why():
    assert applicable_method("quantile", ["b1", "b2", "b1"]) == ("quantile", "")
    assert applicable_method("none", ["b1"]) == ("none", "")
    method, note = applicable_method("cytovi", ["b1", "b1", "b1"])
    assert method == "none" and note == "cytovi not applied: the group's files are one batch"


def test_emd_improved_counts_the_markers_whose_mean_distance_dropped():
    X, b = _batches()
    model = fit_quantiles(X, b, markers=["m1", "m2"], n_quantiles=50)
    dist = batch_distance_table(X, b, model, markers=["m1", "m2"], marker_class=["type"] * 2)
    assert emd_improved(dist) == 1.0  # quantile maps align both markers' batches
    worse = dist.assign(emd_after=np.where(dist["marker"] == "m2", 9.0, dist["emd_after"]))
    assert emd_improved(worse) == 0.5
