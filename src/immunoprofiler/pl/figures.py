"""RNA figures: per-sample QC, marker dot plot."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from anndata import AnnData
from matplotlib.figure import Figure


def qc_figure(cells: pd.DataFrame, row: Mapping[str, Any], *, title: str = "") -> Figure:
    """Counts vs genes (coloured by % mito) and the distributions with the thresholds used."""
    fig, axes = plt.subplots(1, 4, figsize=(17, 4))
    kept = cells["kept"].to_numpy()
    ax = axes[0]
    sc_ = ax.scatter(
        cells["total_counts"],
        cells["n_genes_by_counts"],
        c=cells["pct_counts_mt"],
        s=4,
        cmap="viridis",
        rasterized=True,
    )
    ax.scatter(
        cells.loc[~kept, "total_counts"],
        cells.loc[~kept, "n_genes_by_counts"],
        s=10,
        facecolors="none",
        edgecolors="red",
        linewidths=0.4,
        label="removed",
    )
    ax.set(xscale="log", yscale="log", xlabel="total counts", ylabel="genes detected")
    ax.legend(loc="lower right", fontsize=8)
    fig.colorbar(sc_, ax=ax, label="% mito")
    for ax, col, lo, hi, log in (
        (axes[1], "total_counts", row["min_total_counts"], row["max_total_counts"], True),
        (axes[2], "n_genes_by_counts", row["min_n_genes"], row["max_n_genes"], True),
        (axes[3], "pct_counts_mt", None, row["max_pct_mt"], False),
    ):
        vals = cells[col].to_numpy()
        bins = (
            np.logspace(np.log10(max(vals.min(), 1)), np.log10(vals.max() + 1), 60) if log else 60
        )
        ax.hist(vals, bins=bins, color="grey")
        for v in (lo, hi):
            if v is not None and np.isfinite(v):
                ax.axvline(v, color="red", ls="--")
        ax.set(xscale="log" if log else "linear", xlabel=col, ylabel="cells")
    fig.suptitle(
        f"{title}: {row['n_cells_before']} barcodes → {row['n_cells_after']} cells "
        f"({row['n_qc_outliers']} outliers, {row['n_doublets']} doublets)"
    )
    fig.tight_layout()
    return fig


def marker_dotplot(
    adata: AnnData, *, markers: Mapping[str, Sequence[str]], groupby: str = "cell_type"
) -> Figure:
    """Dot plot of marker genes (present in ``adata``) by cell type."""
    import scanpy as sc

    present = {k: [g for g in v if g in adata.var_names] for k, v in markers.items()}
    present = {k: v for k, v in present.items() if v and k in set(adata.obs[groupby].astype(str))}
    dp = sc.pl.dotplot(
        adata, present, groupby=groupby, show=False, return_fig=True, standard_scale="var"
    )
    dp.make_figure()
    return dp.fig
