"""Cohort tables built from the per-modality composition: wide fractions per sample, and the
same samples' cell-type fractions compared across modalities."""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pandas as pd

CROSS_COLUMNS = [
    "sample_id",
    "modality_a",
    "modality_b",
    "cell_type",
    "fraction_a",
    "fraction_b",
    "shared_fraction_a",
    "shared_fraction_b",
    "pearson_r",
    "mean_abs_diff",
    "n_shared_types",
]

#: sheet columns that describe files, not samples
_FILE_COLUMNS = {"path", "panel", "reference", "modality"}


def sample_metadata(samples: pd.DataFrame) -> pd.DataFrame:
    """One row per ``sample_id`` and modality with the sheet's descriptive columns."""
    keep = [c for c in samples.columns if c not in _FILE_COLUMNS]
    return samples[["modality", *keep]].drop_duplicates(["sample_id", "modality"])


def wide_composition(
    composition: pd.DataFrame, samples: pd.DataFrame, *, level: str = "cell_type"
) -> pd.DataFrame:
    """One row per sample and modality, the sheet's metadata, then one column per cell type
    (``level="cell_type"``) or lineage (``level="lineage"``) with its fraction (0 when absent).

    Examples
    --------
    >>> wide_composition(comp, sheet, level="lineage")  # doctest: +SKIP
    """
    if level not in ("cell_type", "lineage"):
        raise ValueError(f"level must be cell_type or lineage, not {level!r}")
    wide = composition.pivot_table(
        index=["sample_id", "modality"],
        columns=level,
        values="fraction",
        aggfunc="sum",
        fill_value=0.0,
    )
    wide.columns = [str(c) for c in wide.columns]
    n_cells = composition.groupby(["sample_id", "modality"])["n_cells"].sum().rename("n_cells")
    wide = wide.join(n_cells).reset_index()
    meta = sample_metadata(samples)
    out = meta.merge(wide, on=["sample_id", "modality"], how="right")
    types = sorted(c for c in wide.columns if c not in ("sample_id", "modality", "n_cells"))
    front = [c for c in out.columns if c not in types and c != "n_cells"]
    return out[[*front, "n_cells", *types]].sort_values(
        ["modality", "sample_id"], ignore_index=True
    )


def cross_modality(composition: pd.DataFrame) -> pd.DataFrame:
    """For every sample profiled by two or more modalities, the fractions of the cell types both
    modalities call (anywhere in the cohort) side by side, per pair of modalities.

    ``shared_fraction_*`` are renormalised over the shared types so the two sides are
    comparable when one modality calls types the other cannot (e.g. platelets in RNA);
    ``pearson_r`` and ``mean_abs_diff`` (per sample and pair) are computed on them.
    """
    rows = []
    by_mod = {m: c for m, c in composition.groupby("modality", sort=True)}
    for a, b in combinations(sorted(by_mod), 2):
        shared = sorted(set(by_mod[a]["cell_type"]) & set(by_mod[b]["cell_type"]) - {"unknown"})
        if not shared:
            continue
        fa = by_mod[a].pivot_table(
            index="sample_id", columns="cell_type", values="fraction", aggfunc="sum", fill_value=0.0
        )
        fb = by_mod[b].pivot_table(
            index="sample_id", columns="cell_type", values="fraction", aggfunc="sum", fill_value=0.0
        )
        for sample in sorted(set(fa.index) & set(fb.index)):
            xa = fa.loc[sample].reindex(shared, fill_value=0.0).to_numpy(float)
            xb = fb.loc[sample].reindex(shared, fill_value=0.0).to_numpy(float)
            sa = xa / xa.sum() if xa.sum() > 0 else xa
            sb = xb / xb.sum() if xb.sum() > 0 else xb
            r = (
                float(np.corrcoef(sa, sb)[0, 1])
                if len(shared) > 2 and sa.std() and sb.std()
                else np.nan
            )
            mad = float(np.abs(sa - sb).mean())
            for i, t in enumerate(shared):
                rows.append((sample, a, b, t, xa[i], xb[i], sa[i], sb[i], r, mad, len(shared)))
    return pd.DataFrame(rows, columns=CROSS_COLUMNS)
