"""2-D embeddings for figures: UMAP of a seeded subsample of rows, the other rows placed from
their nearest fitted neighbours (one implementation for RNA and cytometry)."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import scipy.sparse as sp


def umap_learn():
    """The ``umap`` module (umap-learn), imported with numba's on-disk cache switched on for
    the functions it and pynndescent compile: they are compiled at import and at the first
    fit in every new process (~30 s on one core, a fixed cost of each clustering job),
    read from ``NUMBA_CACHE_DIR`` (:func:`immunoprofiler.runtime.configure`) after that
    (~3 s; the same machine code, so the same results). Neither library asks for caching
    itself; only their decorators see the switch, which is put back after the import.
    """
    if "umap" not in sys.modules:
        from functools import partial

        import numba

        decorators = {name: getattr(numba, name) for name in ("njit", "jit", "vectorize")}
        for name, decorator in decorators.items():
            setattr(numba, name, partial(decorator, cache=True))
        try:
            import umap  # noqa: F401  (imports pynndescent)
        finally:
            for name, decorator in decorators.items():
                setattr(numba, name, decorator)
    return sys.modules["umap"]


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
        from sklearn.neighbors import NearestNeighbors

        Xr = np.asarray(X[rows], dtype=np.float32)
        # exact neighbours (a tree search, each row its own first neighbour, as umap-learn
        # expects): below 4,096 rows umap-learn would otherwise compute all pairwise
        # distances through a Python callable (~45 s at 3,000 rows), above it NN-descent
        dist, idx = NearestNeighbors(n_neighbors=n_neighbors).fit(Xr).kneighbors(Xr)
        with warnings.catch_warnings():  # no search index: transform() unavailable, unused
            warnings.filterwarnings("ignore", message=".*knn_search_index.*")
            emb[rows] = (
                umap_learn()
                .UMAP(
                    n_neighbors=n_neighbors,
                    min_dist=min_dist,
                    random_state=seed,
                    n_jobs=1,
                    precomputed_knn=(idx, dist, None),
                )
                .fit_transform(Xr)
            )
    return emb


def umap_elsewhere(X: np.ndarray, **kwargs) -> Callable[[], np.ndarray]:
    """Start :func:`umap` of ``X`` in a second Python process (a fresh interpreter, so it
    works from any caller, a Snakemake script included) and return a function that waits
    for it and gives its result — the same array :func:`umap` gives in this process. A
    failure of the other process is raised by that function."""
    folder = tempfile.TemporaryDirectory(prefix="umap_")
    src, out = Path(folder.name) / "X.npy", Path(folder.name) / "emb.npy"
    np.save(src, np.asarray(X, dtype=np.float32))
    proc = subprocess.Popen(
        [sys.executable, "-m", __name__, str(src), str(out), json.dumps(kwargs)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )

    def result() -> np.ndarray:
        with folder:
            _, err = proc.communicate()
            if proc.returncode != 0:
                raise RuntimeError(f"UMAP in a second process failed: {err.strip()[-2000:]}")
            return np.load(out)

    return result


def place(
    X: np.ndarray,
    emb: np.ndarray,
    fitted: np.ndarray,
    *,
    anchors: int = 10,
    n_jobs: int = 1,
    block: int = 200_000,
) -> np.ndarray:
    """``emb`` with every row outside ``fitted`` placed from its nearest fitted rows.

    A placed row gets the weighted mean of the 2-D positions of its ``anchors`` nearest
    fitted rows of ``X`` (exact search), weights ``exp(-(d - d₁) / σ)`` (``d₁`` its nearest
    distance, ``σ`` the median of ``d - d₁`` over its neighbours): the starting position
    umap-learn's ``transform`` gives new points, without the optimisation epochs after it,
    so a row's place depends only on the fitted rows — not on the rows placed with it, the
    block size or ``n_jobs``. Memory: one block of distances at a time.
    """
    from sklearn.neighbors import NearestNeighbors

    fitted = np.asarray(fitted)
    out = np.array(emb, dtype=np.float32, copy=True)
    todo = np.setdiff1d(np.arange(len(X)), fitted)
    if len(todo) == 0 or len(fitted) == 0:
        return out
    k = min(anchors, len(fitted))
    nn = NearestNeighbors(n_neighbors=k, n_jobs=n_jobs).fit(np.asarray(X[fitted], np.float32))
    fitted_emb = out[fitted]
    for start in range(0, len(todo), block):
        rows = todo[start : start + block]
        dist, idx = nn.kneighbors(np.asarray(X[rows], dtype=np.float32))
        excess = dist - dist[:, :1]
        sigma = np.median(excess, axis=1, keepdims=True)
        w = np.exp(-excess / np.where(sigma > 0, sigma, 1.0))
        w /= w.sum(axis=1, keepdims=True)
        out[rows] = np.einsum("ij,ijk->ik", w, fitted_emb[idx]).astype(np.float32)
    return out


def umap_fit_place(
    X: np.ndarray,
    *,
    fit: np.ndarray,
    n_neighbors: int = 15,
    min_dist: float = 0.3,
    seed: int = 0,
    n_jobs: int = 1,
) -> np.ndarray:
    """UMAP fitted on the rows ``fit`` (:func:`umap`), every other row :func:`place`-d from
    its nearest fitted rows: time and memory of the fit do not grow with ``len(X)``."""
    emb = umap(X, rows=fit, n_neighbors=n_neighbors, min_dist=min_dist, seed=seed)
    if np.isnan(emb[fit]).any():  # too few rows to fit: nothing to place from
        return emb
    return place(X, emb, fit, n_jobs=n_jobs)


def pca(X: np.ndarray | sp.spmatrix, *, n_comps: int, seed: int = 0) -> np.ndarray:
    """Principal components of ``X`` (scanpy's PCA, seeded), at most ``min(shape) - 1``."""
    import scanpy as sc

    n = min(n_comps, X.shape[0] - 1, X.shape[1] - 1)
    return np.asarray(sc.pp.pca(X, n_comps=n, random_state=seed), dtype=np.float32)


if __name__ == "__main__":  # umap_elsewhere's second process: X.npy -> emb.npy
    np.save(sys.argv[2], umap(np.load(sys.argv[1]), **json.loads(sys.argv[3])))
