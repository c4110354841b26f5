"""Cohort tables built from the per-modality composition: wide fractions per sample, and the
same samples' cell-type fractions compared across modalities."""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pandas as pd

from ..io.samples import FILE_COLUMNS
from .abundance import views

CROSS_COLUMNS = [
    "sample_id",
    "sample_id_a",
    "sample_id_b",
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


def _metadata_rows(samples: pd.DataFrame) -> pd.DataFrame:
    """One row per ``sample_id`` and modality with the sheet's descriptive columns (not the
    file columns, nor the cytonorm ``reference`` flag)."""
    drop = {*FILE_COLUMNS, "reference", "modality", "panel_group"}
    keep = [c for c in samples.columns if c not in drop]
    return samples[["modality", *keep]].drop_duplicates(["sample_id", "modality"])


def wide_composition(
    composition: pd.DataFrame, samples: pd.DataFrame, *, level: str = "cell_type"
) -> pd.DataFrame:
    """One row per sample and modality, the sheet's metadata (and the panel group of a
    cytometry sample), then one column per cell type
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
    by_sample = composition.groupby(["sample_id", "modality"])
    wide = wide.join(by_sample["n_cells"].sum().rename("n_cells"))
    if "panel_group" in composition:  # the panel group each cytometry sample was analysed in
        wide = wide.join(by_sample["panel_group"].first().fillna("").astype(str))
    wide = wide.reset_index()
    meta = _metadata_rows(samples)
    out = meta.merge(wide, on=["sample_id", "modality"], how="right")
    types = sorted(
        c for c in wide.columns if c not in ("sample_id", "modality", "panel_group", "n_cells")
    )
    front = [c for c in out.columns if c not in types and c != "n_cells"]
    return out[[*front, "n_cells", *types]].sort_values(
        ["modality", "sample_id"], ignore_index=True
    )


def match_ids(composition: pd.DataFrame, samples: pd.DataFrame | None = None) -> pd.Series:
    """Which samples of different modalities are the same biological sample.

    The same ``sample_id`` matches; with ``patient`` and ``timepoint`` in the sheet, samples whose
    ids differ match when their patient and time point do and each modality (each panel
    group: :func:`~immunoprofiler.tl.abundance.views`) has exactly one sample there (the key
    is then ``<patient>|<timepoint>``). Indexed by (modality, sample_id).
    """
    pairs = composition[["modality", "sample_id"]].drop_duplicates()
    key = pd.Series(pairs["sample_id"].to_numpy(), index=pd.MultiIndex.from_frame(pairs))
    if samples is None or not {"patient", "timepoint"} <= set(samples.columns):
        return key
    view = pd.Series(
        views(composition).to_numpy(),
        index=pd.MultiIndex.from_frame(composition[["modality", "sample_id"]]),
    )
    view = view[~view.index.duplicated()].reindex(key.index)
    meta = samples.drop_duplicates(["modality", "sample_id"]).set_index(["modality", "sample_id"])
    meta = meta.reindex(key.index)[["patient", "timepoint"]].astype(str)
    filled = (meta != "") & (meta != "nan")
    meta = meta[filled.all(axis=1)]
    for (patient, timepoint), g in meta.groupby(["patient", "timepoint"]):
        mods = view[g.index]
        ids = set(g.index.get_level_values("sample_id"))
        if len(ids) > 1 and mods.nunique() > 1 and mods.is_unique:
            key[g.index] = f"{patient}|{timepoint}"
    return key


def cross_modality(
    composition: pd.DataFrame,
    samples: pd.DataFrame | None = None,
    *,
    level: str = "cell_type",
    within: bool | None = None,
) -> pd.DataFrame:
    """For every sample profiled by two or more modalities, the fractions of the cell types both
    modalities call (anywhere in the cohort) side by side, per pair of modalities.

    Samples are matched by ``sample_id`` or, given the sheet, by patient and time point
    (:func:`match_ids`): ``sample_id`` is the match key, ``sample_id_a``/``_b`` each side's id.
    ``shared_fraction_*`` are renormalised over the shared types so the two sides are
    comparable when one modality calls types the other cannot (e.g. platelets in RNA);
    ``pearson_r`` and ``mean_abs_diff`` (per sample and pair) are computed on them.

    A modality analysed in several panel groups takes part as one side per group
    (``cytof:lineage``, ``cytof:myeloid``): ``within=True`` keeps only pairs of panels of one
    modality (the cross-panel concordance), ``within=False`` only pairs of modalities, None
    both. ``level="lineage"`` compares lineages (the column ``cell_type`` then holds them).
    """
    key = match_ids(composition, samples)
    comp = composition.assign(
        match=key.reindex(
            pd.MultiIndex.from_frame(composition[["modality", "sample_id"]])
        ).to_numpy(),
        view=views(composition).to_numpy(),
    )
    rows = []
    by_mod = {m: c for m, c in comp.groupby("view", sort=True)}
    modality = {v: c["modality"].iloc[0] for v, c in by_mod.items()}
    pairs = [
        (a, b)
        for a, b in combinations(sorted(by_mod), 2)
        if within is None or (modality[a] == modality[b]) == within
    ]
    for a, b in pairs:
        shared = sorted(set(by_mod[a][level]) & set(by_mod[b][level]) - {"unknown"})
        if not shared:
            continue
        wide = {
            m: by_mod[m]
            .pivot_table(
                index=["match", "sample_id"],
                columns=level,
                values="fraction",
                aggfunc="sum",
                fill_value=0.0,
            )
            .reset_index("sample_id")
            for m in (a, b)
        }
        for match in sorted(set(wide[a].index) & set(wide[b].index)):
            ra, rb = wide[a].loc[match], wide[b].loc[match]
            xa = ra.reindex(shared, fill_value=0.0).to_numpy(float)
            xb = rb.reindex(shared, fill_value=0.0).to_numpy(float)
            sa = xa / xa.sum() if xa.sum() > 0 else xa
            sb = xb / xb.sum() if xb.sum() > 0 else xb
            r = (
                float(np.corrcoef(sa, sb)[0, 1])
                if len(shared) > 2 and sa.std() and sb.std()
                else np.nan
            )
            mad = float(np.abs(sa - sb).mean())
            ids = (match, ra["sample_id"], rb["sample_id"], a, b)
            for i, t in enumerate(shared):
                rows.append((*ids, t, xa[i], xb[i], sa[i], sb[i], r, mad, len(shared)))
    return pd.DataFrame(rows, columns=CROSS_COLUMNS)
