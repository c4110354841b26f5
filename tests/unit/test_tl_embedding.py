"""UMAP of a seeded subsample (tl.embedding.umap), shared by the RNA and cytometry steps."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.neighbors import NearestNeighbors

from immunoprofiler.tl.embedding import place, umap, umap_elsewhere, umap_fit_place


def _blobs(n=400, seed=0):
    rng = np.random.default_rng(seed)
    X = np.vstack([rng.normal(0, 1, (n, 8)), rng.normal(12, 1, (n, 8))]).astype(np.float32)
    return X, np.repeat([0, 1], n)


def test_umap_keeps_populations_apart_and_is_seeded():
    X, label = _blobs()
    emb = umap(X, seed=0)
    assert emb.shape == (len(X), 2) and emb.dtype == np.float32 and np.isfinite(emb).all()
    idx = NearestNeighbors(n_neighbors=11).fit(emb).kneighbors(emb, return_distance=False)[:, 1:]
    assert (label[idx] == label[:, None]).mean() > 0.99
    np.testing.assert_array_equal(emb, umap(X, seed=0))  # reruns are identical


def test_umap_embeds_only_the_rows_asked_for():
    X, _ = _blobs(200)
    rows = np.arange(0, len(X), 2)
    emb = umap(X, rows=rows, seed=1)
    assert np.isfinite(emb[rows]).all() and np.isnan(np.delete(emb, rows, axis=0)).all()
    assert np.isnan(umap(X, rows=rows[:10], seed=1)).all()  # too few rows to embed


def test_placed_rows_land_among_their_population_whatever_the_blocks():
    X, label = _blobs(500)
    fit = np.arange(0, len(X), 5)
    emb = umap_fit_place(X, fit=fit, seed=0)
    assert np.isfinite(emb).all()
    np.testing.assert_array_equal(emb[fit], umap(X, rows=fit, seed=0)[fit])  # fitted: as is
    placed = np.setdiff1d(np.arange(len(X)), fit)
    idx = NearestNeighbors(n_neighbors=10).fit(emb[fit]).kneighbors(emb[placed])[1]
    assert (label[fit][idx] == label[placed, None]).mean() > 0.99
    # a row's place depends on the fitted rows only: blocks and threads change nothing
    again = place(X, umap(X, rows=fit, seed=0), fit, block=97, n_jobs=2)
    np.testing.assert_array_equal(emb, again)


def _cohort_like(n=50_000, dims=30, seed=0):
    """A 50k-cell integrated space: 12 populations of very different sizes, each spread
    along its own 2-D sheet (states within a type) with a little noise, and a continuous
    trajectory between two of them (like an activation gradient)."""
    rng = np.random.default_rng(seed)
    share = np.geomspace(1, 0.01, 12)
    sizes = np.floor(0.9 * n * share / share.sum()).astype(int)
    sizes[0] += n - n // 10 - sizes.sum()
    centres = rng.normal(0, 8, (12, dims))
    X, label = [], []
    for k, m in enumerate(sizes):
        sheet = np.linalg.qr(rng.normal(size=(dims, 2)))[0].T * 3  # 2 × dims
        X.append(centres[k] + rng.uniform(-1, 1, (m, 2)) @ sheet + rng.normal(0, 0.2, (m, dims)))
        label.append(np.full(m, k))
    t = rng.uniform(0, 1, n // 10)[:, None]  # cells on their way from population 0 to 1
    X.append(centres[0] * (1 - t) + centres[1] * t + rng.normal(0, 0.5, (len(t), dims)))
    label.append(np.where(t[:, 0] < 0.5, 0, 1))
    return np.vstack(X).astype(np.float32), np.concatenate(label)


def _scores(X, emb, label, rows, k=15):
    """Per row of ``rows``: share of its k nearest 2-D neighbours with its label, and share
    of its k nearest neighbours in ``X`` that are among them (neighbourhood preservation)."""
    low = NearestNeighbors(n_neighbors=k + 1).fit(emb).kneighbors(emb[rows])[1][:, 1:]
    high = NearestNeighbors(n_neighbors=k + 1).fit(X).kneighbors(X[rows])[1][:, 1:]
    same = (label[low] == label[rows, None]).mean(axis=1)
    kept = np.array([len(np.intersect1d(a, b)) / k for a, b in zip(low, high, strict=True)])
    return same.mean(), kept.mean()


@pytest.mark.slow
def test_placement_against_a_full_umap_at_50k_cells():
    """UMAP fitted on 10k of 50k cells, 40k placed, against UMAP of all 50k: on the placed
    cells, label agreement of their 2-D neighbours within 0.02 of the full UMAP's and at least
    0.95; neighbourhood preservation at least 0.8× the full UMAP's; placed cells as well
    labelled as the fitted ones (within 0.02)."""
    X, label = _cohort_like()
    fit = np.sort(np.random.default_rng(1).choice(len(X), 10_000, replace=False))
    placed_rows = np.setdiff1d(np.arange(len(X)), fit)
    check = np.random.default_rng(2).choice(placed_rows, 5000, replace=False)
    full = umap(X, seed=0)
    placed = umap_fit_place(X, fit=fit, seed=0)
    same_full, kept_full = _scores(X, full, label, check)
    same_placed, kept_placed = _scores(X, placed, label, check)
    same_fitted, _ = _scores(X, placed, label, np.random.default_rng(3).choice(fit, 5000))
    print(
        f"{same_full=:.3f} {kept_full=:.3f} {same_placed=:.3f} {kept_placed=:.3f} {same_fitted=:.3f}"
    )
    assert same_placed >= max(same_full - 0.02, 0.95)
    assert kept_placed >= 0.8 * kept_full
    assert same_placed >= same_fitted - 0.02


def test_umap_in_a_second_process_equals_this_one_and_reports_failures():
    X, _ = _blobs(150)
    np.testing.assert_array_equal(umap_elsewhere(X, seed=3)(), umap(X, seed=3))
    with pytest.raises(RuntimeError, match="second process failed"):
        umap_elsewhere(X, no_such_argument=1)()
