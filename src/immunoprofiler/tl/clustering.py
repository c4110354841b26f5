"""Neighbour graph, Leiden clusters and UMAP on an integrated representation."""

from __future__ import annotations

import logging
from typing import Literal

import numpy as np
import scanpy as sc
from anndata import AnnData

from .embedding import umap_fit_place
from .subsample import balanced_subsample

logger = logging.getLogger(__name__)

Transformer = Literal["auto", "sklearn", "pynndescent"]


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
    ``uns["umap"]`` says how many were fitted. ``n_jobs`` threads search neighbours.

    Examples
    --------
    >>> cluster(adata, use_rep="X_scVI", resolution=1.0)  # doctest: +SKIP
    """
    if use_rep not in adata.obsm:
        raise KeyError(f"obsm has no '{use_rep}' (run integration first)")
    if transformer == "auto":
        transformer = "sklearn" if adata.n_obs < exact_below else "pynndescent"
    # exact search is identical on any number of threads; NN-descent's parallel updates are
    # not, so it keeps one thread (reruns identical)
    threads, sc.settings.n_jobs = sc.settings.n_jobs, n_jobs if transformer == "sklearn" else 1
    try:
        sc.pp.neighbors(
            adata,
            use_rep=use_rep,
            n_neighbors=min(n_neighbors, adata.n_obs - 1),
            transformer=transformer,
            random_state=seed,
        )
    finally:
        sc.settings.n_jobs = threads
    sc.tl.leiden(
        adata,
        resolution=resolution,
        key_added=key_added,
        flavor="igraph",
        n_iterations=2,
        directed=False,
        random_state=seed,
    )
    groups = (
        adata.obs["sample_id"].to_numpy() if "sample_id" in adata.obs else np.zeros(adata.n_obs)
    )
    fit = balanced_subsample(groups, umap_cells, seed)
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
