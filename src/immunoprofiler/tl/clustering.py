"""Neighbour graph, Leiden clusters and UMAP on an integrated representation."""

from __future__ import annotations

import logging
from typing import Literal

import scanpy as sc
from anndata import AnnData

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
    seed: int = 0,
    key_added: str = "leiden",
) -> None:
    """Neighbours on ``obsm[use_rep]``, Leiden into ``obs[key_added]``, UMAP into ``obsm["X_umap"]``.

    ``transformer="auto"`` uses exact neighbours (scikit-learn) below ``exact_below`` cells
    — faster there than compiling pynndescent — and pynndescent above.

    Examples
    --------
    >>> cluster(adata, use_rep="X_scVI", resolution=1.0)  # doctest: +SKIP
    """
    if use_rep not in adata.obsm:
        raise KeyError(f"obsm has no '{use_rep}' (run integration first)")
    if transformer == "auto":
        transformer = "sklearn" if adata.n_obs < exact_below else "pynndescent"
    sc.pp.neighbors(
        adata,
        use_rep=use_rep,
        n_neighbors=min(n_neighbors, adata.n_obs - 1),
        transformer=transformer,
        random_state=seed,
    )
    sc.tl.leiden(
        adata,
        resolution=resolution,
        key_added=key_added,
        flavor="igraph",
        n_iterations=2,
        directed=False,
        random_state=seed,
    )
    sc.tl.umap(adata, min_dist=umap_min_dist, random_state=seed)
    logger.info("%d clusters at resolution %s", adata.obs[key_added].nunique(), resolution)
