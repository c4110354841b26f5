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
