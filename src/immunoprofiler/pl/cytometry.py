"""Cytometry figures: metacluster heatmap; composition bars (both modalities)."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure


def metacluster_heatmap(
    X: np.ndarray, obs: pd.DataFrame, markers: Sequence[str], *, counts: pd.Series | None = None
) -> Figure:
    """Median of each type marker per metacluster (scaled 0–1 per marker), rows labelled
    with the metacluster's cell type and size.

    ``X`` / ``obs`` may be a subsample of the events; ``counts`` (events per metacluster
    and cell type, indexed by both) then gives the labels and sizes of all of them.
    """
    df = pd.DataFrame(X, columns=list(markers))
    df["metacluster"] = obs["metacluster"].astype(str).to_numpy()
    if counts is None:
        counts = (
            pd.Series(
                1,
                index=pd.MultiIndex.from_arrays(
                    [df["metacluster"], obs["cell_type"].astype(str).to_numpy()]
                ),
            )
            .groupby(level=[0, 1])
            .sum()
        )
    counts = counts.set_axis(counts.index.map(lambda k: (str(k[0]), str(k[1]))))
    counts = counts[counts > 0]
    # the most frequent cell type of each metacluster (ties: the first in type order)
    label = counts.sort_index().groupby(level=0).idxmax().map(lambda k: k[1])
    size = counts.groupby(level=0).sum()
    order = sorted(size.index, key=lambda x: int(x) if x.isdigit() else x)
    med = df.groupby("metacluster").median().reindex(order)
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
