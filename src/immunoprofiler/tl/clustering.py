"""Neighbour graph, Leiden clusters and UMAP on an integrated representation."""

from __future__ import annotations

import logging
from typing import Literal

import numpy as np
import pandas as pd
import scanpy as sc
import scipy.sparse as sp
from anndata import AnnData

from .embedding import umap_fit_place, umap_learn
from .subsample import balanced_subsample

logger = logging.getLogger(__name__)

Transformer = Literal["auto", "sklearn", "pynndescent"]


def _graph(adjacency: sp.spmatrix, *, chunk: int = 4_000_000):
    """The undirected igraph graph of ``adjacency`` with its values as edge ``weight``: the
    edges scanpy's ``get_igraph_from_adjacency`` adds, in its order (every stored non-zero,
    row by row), taken from the CSR arrays ``chunk`` edges at a time — not as a Python list
    of tuples (at 1M cells ~30M tuples, several GB)."""
    import igraph as ig

    a = sp.csr_matrix(adjacency)
    rows = np.repeat(np.arange(a.shape[0], dtype=np.int64), np.diff(a.indptr))
    keep = a.data != 0
    sources, targets, weights = rows[keep], a.indices[keep].astype(np.int64), a.data[keep]
    g = ig.Graph(n=a.shape[0], directed=False)
    for start in range(0, len(sources), chunk):
        stop = start + chunk
        g.add_edges(np.column_stack([sources[start:stop], targets[start:stop]]))
    g.es["weight"] = weights.astype(np.float64)
    return g


class _IgraphRng:
    """igraph's random number generator interface over a seeded ``RandomState`` (the draws
    scanpy's own adapter gives, so labels equal scanpy's for one seed)."""

    def __init__(self, seed: int) -> None:
        self._rng = np.random.RandomState(seed)

    def getrandbits(self, k: int) -> int:
        return self._rng.tomaxint() & ((1 << k) - 1)

    def randint(self, a: int, b: int) -> int:
        return self._rng.randint(a, b + 1)

    def gauss(self, mu: float, sigma: float) -> float:
        return self._rng.normal(mu, sigma)

    def random(self) -> float:
        return self._rng.random()


def leiden(
    adjacency: sp.spmatrix, *, resolution: float = 1.0, seed: int = 0, n_iterations: int = 2
) -> pd.Categorical:
    """Leiden clusters (igraph, modularity, weighted) of a cell graph: the labels
    ``scanpy.tl.leiden(flavor="igraph", n_iterations=2, directed=False)`` gives for the same
    graph and seed, without the edge list scanpy builds in Python.

    Examples
    --------
    >>> labels = leiden(adata.obsp["connectivities"], resolution=1.0, seed=0)  # doctest: +SKIP
    """
    import random

    import igraph as ig
    from natsort import natsorted

    g = _graph(adjacency)
    ig.set_random_number_generator(_IgraphRng(seed))
    try:
        part = g.community_leiden(
            objective_function="modularity",
            weights="weight",
            resolution=resolution,
            n_iterations=n_iterations,
        )
    finally:
        ig.set_random_number_generator(random)
    groups = np.asarray(part.membership)
    return pd.Categorical(groups.astype("U"), categories=natsorted(map(str, np.unique(groups))))


def _nn_descent(n_neighbors: int, seed: int, n_jobs: int):
    """scanpy's ``transformer="pynndescent"`` (the same NN-descent, the same graph) without
    the search index pynndescent builds after the graph for queries of new points, which
    :func:`scanpy.pp.neighbors` never makes (``compress_index``: ~20 s of numba compilation
    in every process at any size). The graph is identical on rerun with the same ``n_jobs``
    (NN-descent's parallel updates depend on the number of threads, not on timing)."""
    import numba
    from pynndescent import PyNNDescentTransformer

    class GraphOnly(PyNNDescentTransformer):
        def fit_transform(self, X, y=None, **fit_params):
            self.fit(X, compress_index=False)
            graph = self.transform(X=None)
            del self.index_  # the index is not kept (nor its forest, in uns)
            return graph

    return GraphOnly(
        n_neighbors=n_neighbors,
        metric="euclidean",
        metric_kwds={},
        random_state=seed,
        n_jobs=min(n_jobs, numba.config.NUMBA_NUM_THREADS),  # numba's ceiling in this process
    )


def umap_rows(obs: pd.DataFrame, n: int, seed: int) -> np.ndarray:
    """The cells a UMAP of at most ``n`` cells is fitted on: a seeded subsample, even over
    ``obs["sample_id"]`` when present (:func:`cluster`'s choice, known before clustering)."""
    groups = obs["sample_id"].to_numpy() if "sample_id" in obs else np.zeros(len(obs))
    return balanced_subsample(groups, n, seed)


def cluster(
    adata: AnnData,
    *,
    use_rep: str,
    n_neighbors: int = 15,
    resolution: float = 1.0,
    transformer: Transformer = "auto",
    exact_below: int = 50_000,
    umap_min_dist: float = 0.5,
    umap_cells: int = 50_000,
    seed: int = 0,
    key_added: str = "leiden",
    n_jobs: int = 1,
) -> np.ndarray:
    """Neighbours on ``obsm[use_rep]``, Leiden into ``obs[key_added]``, UMAP into ``obsm["X_umap"]``;
    returns the rows the UMAP was fitted on.

    ``transformer="auto"`` uses exact neighbours (scikit-learn) below ``exact_below`` cells
    — faster there than compiling pynndescent — and pynndescent above. The UMAP is fitted on
    at most ``umap_cells`` cells (seeded, even over ``obs["sample_id"]`` when present) and the
    others are placed from their nearest fitted cells (:func:`..embedding.umap_fit_place`);
    ``uns["umap"]`` says how many were fitted. ``n_jobs`` threads search neighbours (the
    graph is identical on rerun with the same ``n_jobs``; NN-descent's differs between
    numbers of threads).

    Examples
    --------
    >>> cluster(adata, use_rep="X_scVI", resolution=1.0)  # doctest: +SKIP
    """
    if use_rep not in adata.obsm:
        raise KeyError(f"obsm has no '{use_rep}' (run integration first)")
    if transformer == "auto":
        transformer = "sklearn" if adata.n_obs < exact_below else "pynndescent"
    umap_learn()  # scanpy's connectivities are umap-learn's: imported with numba's cache
    k = min(n_neighbors, adata.n_obs - 1)
    threads, sc.settings.n_jobs = sc.settings.n_jobs, n_jobs  # exact search's threads
    try:
        sc.pp.neighbors(
            adata,
            use_rep=use_rep,
            n_neighbors=k,
            transformer="sklearn" if transformer == "sklearn" else _nn_descent(k, seed, n_jobs),
            random_state=seed,
        )
    finally:
        sc.settings.n_jobs = threads
    adata.obs[key_added] = leiden(
        adata.obsp["connectivities"], resolution=resolution, seed=seed, n_iterations=2
    )
    adata.uns[key_added] = {
        "params": {"resolution": resolution, "random_state": seed, "n_iterations": 2}
    }
    fit = umap_rows(adata.obs, umap_cells, seed)
    adata.obsm["X_umap"] = umap_fit_place(
        np.asarray(adata.obsm[use_rep], dtype=np.float32),
        fit=fit,
        n_neighbors=n_neighbors,
        min_dist=umap_min_dist,
        seed=seed,
        n_jobs=n_jobs,
    )
    adata.uns["umap"] = {
        "params": {"min_dist": umap_min_dist, "n_neighbors": n_neighbors, "use_rep": use_rep},
        "fitted_cells": len(fit),
        "placed_cells": adata.n_obs - len(fit),
    }
    logger.info(
        "%d clusters at resolution %s; UMAP fitted on %d cells, %d placed",
        adata.obs[key_added].nunique(),
        resolution,
        len(fit),
        adata.n_obs - len(fit),
    )
    return fit
