"""2-D embeddings for figures: UMAP of a seeded subsample of rows (one implementation for
RNA and cytometry)."""

from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse as sp


def umap(
    X: np.ndarray,
    *,
    rows: np.ndarray | None = None,
    n_neighbors: int = 15,
    min_dist: float = 0.3,
    seed: int = 0,
) -> np.ndarray:
    """UMAP (umap-learn, seeded, single-threaded so reruns are identical) of ``X[rows]``.

    Returns one row per row of ``X`` (float32), ``NaN`` outside ``rows``; all ``NaN`` when
    there are too few rows to embed (≤ ``n_neighbors``).

    Examples
    --------
    >>> emb = umap(X, rows=np.arange(0, len(X), 10), seed=0)  # doctest: +SKIP
    """
    rows = np.arange(len(X)) if rows is None else np.asarray(rows)
    emb = np.full((X.shape[0], 2), np.nan, dtype=np.float32)
    if len(rows) > n_neighbors:
        import umap as umap_learn
        from sklearn.neighbors import NearestNeighbors

        Xr = np.asarray(X[rows], dtype=np.float32)
        # exact neighbours (a tree search, each row its own first neighbour, as umap-learn
        # expects): below 4,096 rows umap-learn would otherwise compute all pairwise
        # distances through a Python callable (~45 s at 3,000 rows), above it NN-descent
        dist, idx = NearestNeighbors(n_neighbors=n_neighbors).fit(Xr).kneighbors(Xr)
        with warnings.catch_warnings():  # no search index: transform() unavailable, unused
            warnings.filterwarnings("ignore", message=".*knn_search_index.*")
            emb[rows] = umap_learn.UMAP(
                n_neighbors=n_neighbors,
                min_dist=min_dist,
                random_state=seed,
                n_jobs=1,
                precomputed_knn=(idx, dist, None),
            ).fit_transform(Xr)
    return emb


def pca(X: np.ndarray | sp.spmatrix, *, n_comps: int, seed: int = 0) -> np.ndarray:
    """Principal components of ``X`` (scanpy's PCA, seeded), at most ``min(shape) - 1``."""
    import scanpy as sc

    n = min(n_comps, X.shape[0] - 1, X.shape[1] - 1)
    return np.asarray(sc.pp.pca(X, n_comps=n, random_state=seed), dtype=np.float32)
