"""UMAP scatter plots (one plotter for RNA and cytometry)."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure


def umap_scatter(
    emb: np.ndarray,
    obs: pd.DataFrame,
    *,
    keys: Sequence[str] = ("cell_type", "batch"),
    title: str = "",
) -> Figure:
    """One panel per ``obs`` column of ``keys`` (those present), the embedded rows of ``emb``
    (rows with ``NaN`` are not embedded) coloured by that column, with a legend.

    Points are drawn in one seeded random order, so no group hides another.

    Examples
    --------
    >>> fig = umap_scatter(adata.obsm["X_umap"], adata.obs, keys=("cell_type", "batch"))  # doctest: +SKIP
    """
    ok = np.isfinite(emb).all(axis=1)
    keys = [k for k in keys if k in obs]
    order = np.random.default_rng(0).permutation(int(ok.sum()))
    xy = emb[ok][order]
    fig, axes = plt.subplots(1, len(keys), figsize=(6.5 * len(keys), 5.5), squeeze=False)
    size = max(0.5, min(8.0, 20_000 / max(len(xy), 1)))
    for ax, key in zip(axes[0], keys, strict=True):
        values = obs[key].astype(str).to_numpy()[ok][order]
        cats = sorted(set(values))
        cmap = plt.get_cmap("tab20", max(len(cats), 1))
        # the colours of all points in one lookup (a call a point took 9 s at 168,000 cells)
        codes = pd.Categorical(values, categories=cats).codes
        ax.scatter(xy[:, 0], xy[:, 1], s=size, c=cmap(codes), rasterized=True)
        for i, c in enumerate(cats):
            ax.scatter([], [], s=10, color=cmap(i), label=c)
        ax.set_title(key)
        ax.set_xlabel("UMAP 1")
        ax.set_ylabel("UMAP 2")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.legend(
            markerscale=2, fontsize=7, loc="center left", bbox_to_anchor=(1, 0.5), frameon=False
        )
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
