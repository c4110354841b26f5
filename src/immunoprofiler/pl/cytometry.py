"""Cytometry figures: metacluster heatmap, UMAP scatter, abundance bars."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure


def metacluster_heatmap(X: np.ndarray, obs: pd.DataFrame, markers: Sequence[str]) -> Figure:
    """Median of each type marker per metacluster (scaled 0–1 per marker), rows labelled
    with the metacluster's cell type and size."""
    df = pd.DataFrame(X, columns=list(markers))
    df["metacluster"] = obs["metacluster"].astype(str).to_numpy()
    med = df.groupby("metacluster").median()
    med = med.loc[sorted(med.index, key=lambda x: int(x) if x.isdigit() else x)]
    label = (
        pd.DataFrame({"m": df["metacluster"], "t": obs["cell_type"].astype(str).to_numpy()})
        .groupby("m")["t"]
        .agg(lambda t: t.value_counts().index[0])
    )
    size = df["metacluster"].value_counts()
    scaled = (med - med.min()) / (med.max() - med.min()).replace(0, 1)
    fig, ax = plt.subplots(figsize=(0.35 * len(markers) + 4, 0.3 * len(med) + 1.5))
    im = ax.imshow(scaled.to_numpy(), aspect="auto", cmap="viridis")
    ax.set_xticks(range(len(markers)), markers, rotation=90)
    ax.set_yticks(
        range(len(med)), [f"{m}: {label[m]} (n={size[m]})" for m in med.index], fontsize=8
    )
    ax.set_xlabel("type marker (median, scaled per marker)")
    fig.colorbar(im, ax=ax, fraction=0.03)
    fig.tight_layout()
    return fig


def umap_scatter(
    emb: np.ndarray, obs: pd.DataFrame, *, keys: Sequence[str] = ("cell_type", "batch")
) -> Figure:
    """UMAP of the embedded subsample coloured by each of ``keys``."""
    ok = np.isfinite(emb).all(axis=1)
    keys = [k for k in keys if k in obs]
    order = np.random.default_rng(0).permutation(int(ok.sum()))  # no group drawn over another
    xy = emb[ok][order]
    fig, axes = plt.subplots(1, len(keys), figsize=(6.5 * len(keys), 5.5), squeeze=False)
    for ax, key in zip(axes[0], keys, strict=True):
        values = obs[key].astype(str).to_numpy()[ok][order]
        cats = sorted(set(values))
        cmap = plt.get_cmap("tab20", max(len(cats), 1))
        code = {c: i for i, c in enumerate(cats)}
        ax.scatter(xy[:, 0], xy[:, 1], s=2, c=[cmap(code[v]) for v in values], rasterized=True)
        for c in cats:
            ax.scatter([], [], s=10, color=cmap(code[c]), label=c)
        ax.set_title(key)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.legend(
            markerscale=2, fontsize=7, loc="center left", bbox_to_anchor=(1, 0.5), frameon=False
        )
    fig.tight_layout()
    return fig


def abundance_bars(comp: pd.DataFrame, *, ylabel: str = "fraction of retained events") -> Figure:
    """Stacked bars of cell-type fractions per sample (a composition table)."""
    wide = comp.pivot_table(index="sample_id", columns="cell_type", values="fraction", fill_value=0)
    fig, ax = plt.subplots(figsize=(0.5 * len(wide) + 4, 4.5))
    bottom = np.zeros(len(wide))
    cmap = plt.get_cmap("tab20", max(wide.shape[1], 1))
    for i, ct in enumerate(wide.columns):
        ax.bar(wide.index, wide[ct], bottom=bottom, color=cmap(i), label=ct)
        bottom += wide[ct].to_numpy()
    ax.set_ylabel(ylabel)
    ax.tick_params(axis="x", rotation=90)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1, 0.5), frameon=False)
    fig.tight_layout()
    return fig
