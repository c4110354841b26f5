"""UMAP of a seeded subsample (tl.embedding.umap), shared by the RNA and cytometry steps."""

from __future__ import annotations

import numpy as np
from sklearn.neighbors import NearestNeighbors

from immunoprofiler.tl.embedding import umap


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
