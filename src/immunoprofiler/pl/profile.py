"""Cohort figures: cross-modality concordance and differential abundance."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd


def composition_bars(composition: pd.DataFrame):
    """Stacked cell-type fractions, one bar per sample and modality (``sample · modality``)."""
    from .cytometry import abundance_bars

    label = composition["sample_id"] + " · " + composition["modality"]
    order = composition.assign(_l=label).sort_values(["modality", "sample_id"])
    return abundance_bars(order.assign(sample_id=order["_l"]), ylabel="fraction of cells / events")


def qc_status_bars(status: pd.DataFrame):
    """Fraction of cells / events kept by QC per sample and modality; failed samples in red
    with their reasons next to the bar."""
    d = status.sort_values(["modality", "sample_id"], ascending=False, ignore_index=True)
    fig, ax = plt.subplots(figsize=(8, 0.3 * len(d) + 1.2))
    colors = np.where(d["passed"].astype(bool), "tab:green", "tab:red")
    ax.barh(d["sample_id"] + " · " + d["modality"], d["fraction_retained"], color=colors)
    for i, r in d.iterrows():
        if r["reasons"]:
            ax.text(0.01, i, str(r["reasons"]), va="center", fontsize=7, color="white")
    ax.set(xlim=(0, 1), xlabel="fraction kept by QC (green: passed, red: failed)")
    fig.tight_layout()
    return fig


def concordance_scatter(cross: pd.DataFrame):
    """One panel per pair of modalities: each shared cell type's fraction in one against the
    other, a point per sample and type, with the identity line and per-pair Pearson r."""
    pairs = cross[["modality_a", "modality_b"]].drop_duplicates().to_numpy().tolist()
    fig, axes = plt.subplots(1, max(len(pairs), 1), figsize=(4.6 * max(len(pairs), 1), 4.4))
    axes = np.atleast_1d(axes)
    if not pairs:
        axes[0].text(0.5, 0.5, "no sample is profiled by two modalities", ha="center")
        axes[0].set_axis_off()
        return fig
    types = sorted(cross["cell_type"].unique())
    colors = {t: plt.cm.tab20(i % 20) for i, t in enumerate(types)}
    for ax, (a, b) in zip(axes, pairs, strict=True):
        d = cross[(cross["modality_a"] == a) & (cross["modality_b"] == b)]
        for t, g in d.groupby("cell_type"):
            ax.scatter(
                g["shared_fraction_a"], g["shared_fraction_b"], s=22, color=colors[t], label=t
            )
        top = float(max(d["shared_fraction_a"].max(), d["shared_fraction_b"].max(), 0.05)) * 1.05
        ax.plot([0, top], [0, top], color="0.6", lw=0.8, ls="--")
        r = (
            np.corrcoef(d["shared_fraction_a"], d["shared_fraction_b"])[0, 1]
            if len(d) > 2
            else np.nan
        )
        ax.set(xlim=(0, top), ylim=(0, top), xlabel=f"{a} fraction", ylabel=f"{b} fraction")
        ax.set_title(f"{a} vs {b}: r = {r:.2f}, {d['sample_id'].nunique()} samples", fontsize=10)
    handles = [plt.Line2D([], [], ls="", marker="o", color=colors[t], label=t) for t in types]
    axes[-1].legend(
        handles=handles, fontsize=7, bbox_to_anchor=(1.02, 1), loc="upper left", frameon=False
    )
    fig.tight_layout()
    return fig


def da_forest(da: pd.DataFrame, *, alpha: float = 0.05):
    """Per modality, the fine cell types' effect (``coef`` ± 1.96 SE from t) sorted by effect,
    significant ones (q < alpha) in red; the note instead when nothing was tested."""
    d = da[da["level"] == "cell_type"]
    mods = sorted(d["modality"].unique()) or ["-"]
    height = max(3.0, 0.32 * d.groupby("modality").size().max() + 1.2) if len(d) else 3.0
    fig, axes = plt.subplots(1, len(mods), figsize=(5.2 * len(mods), height), squeeze=False)
    for ax, m in zip(axes[0], mods, strict=True):
        g = d[d["modality"] == m].sort_values("coef")
        if g.empty or g["p_value"].isna().all():
            note = g["note"].iloc[0] if len(g) else "no cell types"
            ax.text(0.5, 0.5, f"{m}: {note}", ha="center", va="center", wrap=True, fontsize=9)
            ax.set_axis_off()
            continue
        se = np.abs(g["coef"] / g["t"]).fillna(0)
        y = np.arange(len(g))
        sig = (g["q_value"] < alpha).to_numpy()
        ax.errorbar(g["coef"], y, xerr=1.96 * se, fmt="none", ecolor="0.6", lw=1)
        ax.scatter(g["coef"], y, c=np.where(sig, "tab:red", "0.3"), s=25, zorder=3)
        ax.axvline(0, color="0.5", lw=0.8, ls="--")
        ax.set_yticks(
            y,
            [f"{t}  (q={q:.2g})" for t, q in zip(g["cell_type"], g["q_value"], strict=True)],
            fontsize=8,
        )
        ga, gb = g["group_a"].iloc[0], g["group_b"].iloc[0]
        scale = "log2 fold change" if g["transform"].iloc[0] == "log_ratio" else "difference"
        ax.set(
            xlabel=f"{scale} ({g['transform'].iloc[0]}), {gb} − {ga}", title=f"{m}: {gb} vs {ga}"
        )
    fig.tight_layout()
    return fig


def _note_axis(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True, fontsize=9)
    ax.set_axis_off()


def ds_heatmap(ds: pd.DataFrame, *, alpha: float = 0.05):
    """Per modality, cell type × marker differential state: ``logFC`` (b − a, transformed
    scale) in a diverging map, ``*`` where q < alpha."""
    mods = sorted(ds["modality"].unique()) or ["-"]
    n_types = max((ds.groupby("modality")["cell_type"].nunique().max() if len(ds) else 1), 1)
    n_markers = max((ds.groupby("modality")["marker"].nunique().max() if len(ds) else 1), 1)
    fig, axes = plt.subplots(
        1,
        len(mods),
        figsize=(max(4.0, 0.45 * n_markers + 2.5) * len(mods), max(3.0, 0.35 * n_types + 1.5)),
        squeeze=False,
    )
    for ax, m in zip(axes[0], mods, strict=True):
        g = ds[ds["modality"] == m]
        if g.empty:
            _note_axis(ax, f"{m}: no state markers")
            continue
        lfc = g.pivot_table(index="cell_type", columns="marker", values="logFC", aggfunc="first")
        q = g.pivot_table(index="cell_type", columns="marker", values="q_value", aggfunc="first")
        q = q.reindex_like(lfc)
        lim = float(np.nanmax(np.abs(lfc.to_numpy()))) if np.isfinite(lfc.to_numpy()).any() else 1
        im = ax.imshow(lfc.to_numpy(), cmap="RdBu_r", vmin=-lim, vmax=lim, aspect="auto")
        for (i, j), v in np.ndenumerate(q.to_numpy()):
            if v < alpha:
                ax.text(j, i, "*", ha="center", va="center", fontsize=11, color="k")
        ax.set_xticks(range(lfc.shape[1]), lfc.columns, rotation=90, fontsize=8)
        ax.set_yticks(range(lfc.shape[0]), lfc.index, fontsize=8)
        ga, gb = g["group_a"].iloc[0], g["group_b"].iloc[0]
        ax.set_title(f"{m}: {gb} − {ga} (* q < {alpha})", fontsize=10)
        fig.colorbar(im, ax=ax, shrink=0.8, label="difference of medians")
    fig.tight_layout()
    return fig


def volcano(table: pd.DataFrame, *, by: str, effect: str, label, alpha: float = 0.05, top=8):
    """One volcano per ``by`` value: ``effect`` against −log10 p, q < alpha in red, the
    ``top`` smallest p-values labelled with ``label(row)``; the note where nothing was
    tested."""
    keys = sorted(table[by].unique()) or ["-"]
    fig, axes = plt.subplots(1, len(keys), figsize=(4.6 * len(keys), 4.0), squeeze=False)
    for ax, k in zip(axes[0], keys, strict=True):
        g = table[table[by] == k].dropna(subset=["p_value"])
        if g.empty:
            rows = table[table[by] == k]
            _note_axis(ax, f"{k}: {rows['note'].iloc[0] if len(rows) else 'nothing tested'}")
            continue
        y = -np.log10(g["p_value"].clip(lower=1e-300))
        sig = (g["q_value"] < alpha).to_numpy()
        ax.scatter(g[effect], y, s=10, c=np.where(sig, "tab:red", "0.6"))
        for _, r in g.nsmallest(top, "p_value").iterrows():
            ax.annotate(label(r), (r[effect], -np.log10(max(r["p_value"], 1e-300))), fontsize=7)
        ax.axvline(0, color="0.5", lw=0.8, ls="--")
        ax.set(xlabel=effect, ylabel="−log10 p", title=f"{k} (red: q < {alpha})")
    fig.tight_layout()
    return fig


def top_genes(de: pd.DataFrame, *, n: int = 10, alpha: float = 0.05):
    """Per cell type, the ``n`` first genes of the differential-expression table (by p-value,
    or by the size of the change where nothing was tested) as log2 fold-change bars, q <
    alpha in red."""
    types = sorted(de["cell_type"].unique()) or ["-"]
    cols = min(4, len(types))
    rows = int(np.ceil(len(types) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 0.25 * n * rows + 1.2 * rows))
    axes = np.atleast_1d(axes).ravel()
    for ax, t in zip(axes, types, strict=False):
        part = de[de["cell_type"] == t]
        g = part[part["gene"].notna()].head(n)
        if g.empty:  # the table's row for the type says why
            why = part["note"].iloc[0] if len(part) and "note" in part else ""
            _note_axis(ax, f"{t}: no genes" + (f"\n({why})" if why else ""))
            continue
        sig = (g["q_value"] < alpha).to_numpy()
        ax.barh(range(len(g)), g["log2FoldChange"], color=np.where(sig, "tab:red", "0.5"))
        ax.set_yticks(range(len(g)), g["gene"], fontsize=7)
        ax.invert_yaxis()
        ax.axvline(0, color="0.3", lw=0.8)
        ax.set_title(t, fontsize=9)
        ax.set_xlabel("log2 fold change", fontsize=8)
    for ax in axes[len(types) :]:
        ax.set_axis_off()
    fig.tight_layout()
    return fig
