"""Differential state of cytometry cell types between two groups of samples (diffcyt-DS-limma).

Per modality (or panel group), cell type and marker: the per-sample median of the transformed
values (:func:`immunoprofiler.tl.pseudobulk.marker_medians`) is the response of a linear
model with the same design as differential abundance (group, a block per ``paired_by`` value,
covariates: :func:`immunoprofiler.tl.differential.design_matrix`), variances moderated across
all of a modality's tests (limma's empirical Bayes) and Benjamini–Hochberg over them. As in
diffcyt, a sample with fewer than ``min_cells`` cells of a type does not enter that type's
tests (its median is too noisy), and the table says so.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd

from .differential import _bh, design_matrix, moderated_t, require_pairs, select_samples

logger = logging.getLogger(__name__)

DS_COLUMNS = [
    "modality",
    "cell_type",
    "cell_ontology_id",
    "marker",
    "marker_class",
    "group_a",
    "group_b",
    "n_samples",
    "n_a",
    "n_b",
    "mean_median_a",
    "mean_median_b",
    "logFC",
    "t",
    "df",
    "p_value",
    "q_value",
    "paired_by",
    "covariates",
    "note",
]


def differential_state(
    medians: pd.DataFrame,
    n_cells: pd.DataFrame,
    samples: pd.DataFrame,
    *,
    column: str,
    groups: Sequence[str],
    paired_by: str | None = None,
    covariates: Sequence[str] = (),
    min_cells: int = 10,
    marker_classes: Sequence[str] = ("state",),
) -> pd.DataFrame:
    """Test every cell type × marker median between ``groups[0]`` (a) and ``groups[1]`` (b),
    per modality.

    Parameters
    ----------
    medians
        Long table ``sample_id, modality, [panel_group,] cell_type, marker, marker_class,
        median`` (:func:`immunoprofiler.tl.pseudobulk.marker_medians`).
    n_cells
        Long table ``sample_id, modality, [panel_group, cell_ontology_id,] cell_type,
        n_cells`` (the composition). A modality analysed in several panel groups is tested
        per group (``modality`` is then ``<modality>:<panel group>``, as in differential
        abundance).
    samples
        One row per ``sample_id`` (index) with ``column``, ``paired_by`` and ``covariates``.
    min_cells
        A sample with fewer cells of a type leaves that type's tests (``note`` counts them).
    marker_classes
        The panel classes tested (``state``; add ``type`` to test type markers too).

    Returns
    -------
    One row per modality × cell type × marker (:data:`DS_COLUMNS`); ``logFC`` is the
    difference of medians on the transformed scale (b − a, adjusted for the design). Rows
    that cannot be tested (fewer than two samples per group left) have no p-value and say
    why in ``note``.
    """
    from .abundance import views

    med = medians[medians["marker_class"].isin(marker_classes)].copy()
    comp = n_cells.copy()
    for t in (med, comp):
        if "panel_group" not in t:
            t["panel_group"] = ""
        t["panel_group"] = t["panel_group"].fillna("").astype(str)
        t["view"] = views(t)
    cells = comp.set_index(["view", "sample_id", "cell_type"])["n_cells"]
    ontology = (
        comp.drop_duplicates("cell_type").set_index("cell_type")["cell_ontology_id"]
        if "cell_ontology_id" in comp
        else pd.Series(dtype=str)
    )
    # a marker some of a modality's panel groups lack is tested where it is measured
    measured_in = med.groupby(["modality", "marker"])["view"].unique()
    modality_views = comp.groupby("modality")["view"].unique()
    lacking = {  # (modality, marker) -> the modality's views (panel groups) without it
        (mod, mk): sorted(set(modality_views.get(mod, [])) - set(views))
        for (mod, mk), views in measured_in.items()
    }
    tables, unpaired_only = [], []
    for modality, m in med.groupby("view", sort=True):
        meta, unpaired = select_samples(
            samples.loc[samples.index.isin(m["sample_id"].unique())],
            column,
            groups,
            paired_by=paired_by,
            covariates=covariates,
        )
        classes = m.drop_duplicates(["cell_type", "marker"]).set_index(["cell_type", "marker"])
        mod = m["modality"].iloc[0]  # the view's modality (views split it by panel group)
        if not len(meta):  # no sample of either group measured this way, or none paired
            if unpaired:
                unpaired_only.append(modality)
                tables.append(
                    _untested(modality, classes, ontology, groups, paired_by, covariates, unpaired)
                )
            continue
        wide = m.pivot_table(
            index="sample_id", columns=["cell_type", "marker"], values="median", aggfunc="first"
        ).reindex(meta.index)
        per_type = (  # samples × cell types: each type's cells, read for its markers' columns
            cells.xs(modality, level="view").unstack("cell_type")
            if modality in cells.index.get_level_values("view")
            else pd.DataFrame()
        )
        n = (
            per_type.reindex(index=wide.index, columns=wide.columns.get_level_values(0))
            .fillna(0)
            .to_numpy()
        )
        few = (n < min_cells) & wide.notna().to_numpy()
        absent = (n >= min_cells) & wide.isna().to_numpy()  # cells, but the marker not measured
        Y = wide.to_numpy(float)
        Y[n < min_cells] = np.nan
        is_b = (meta[column].astype(str) == str(groups[1])).to_numpy()
        seen = ~np.isnan(Y)
        res = pd.DataFrame(
            {
                "modality": modality,
                "cell_type": wide.columns.get_level_values(0),
                "cell_ontology_id": wide.columns.get_level_values(0).map(ontology).fillna(""),
                "marker": wide.columns.get_level_values(1),
                "marker_class": classes.loc[wide.columns, "marker_class"].to_numpy(),
                "group_a": str(groups[0]),
                "group_b": str(groups[1]),
                "n_samples": seen.sum(axis=0),
                "n_a": seen[~is_b].sum(axis=0),
                "n_b": seen[is_b].sum(axis=0),
                "mean_median_a": _mean(Y[~is_b]),
                "mean_median_b": _mean(Y[is_b]),
                "paired_by": paired_by or "",
                "covariates": ",".join(covariates),
            }
        )
        dropped = f"{len(unpaired)} unpaired sample(s) left out" if unpaired else ""
        notes = [
            "; ".join(
                filter(
                    None,
                    [
                        dropped,
                        f"{k} sample(s) with < {min_cells} cells left out" if k else "",
                        f"not measured in {a} sample(s) (their panel lacks it)" if a else "",
                        f"not in {', '.join(lacking[mod, mk])} (not tested there)"
                        if lacking.get((mod, mk))
                        else "",
                    ],
                )
            )
            for k, a, mk in zip(few.sum(axis=0), absent.sum(axis=0), res["marker"], strict=True)
        ]
        X = design_matrix(meta, column, str(groups[1]), paired_by, covariates)
        fit = moderated_t(Y, X, coef=1)
        too_few = (res["n_a"] < 2) | (res["n_b"] < 2)
        fit.loc[too_few.to_numpy(), ["t", "df", "p_value"]] = np.nan  # effect sizes only
        for i in np.flatnonzero(too_few | fit["p_value"].isna().to_numpy()):
            why = (
                f"not tested: {res.at[i, 'n_a']} {groups[0]} and {res.at[i, 'n_b']} "
                f"{groups[1]} samples (at least 2 per group, and residual degrees of freedom, "
                "are needed)"
            )
            notes[i] = "; ".join(filter(None, [why, notes[i]]))
        res["logFC"] = fit["coef"].to_numpy()
        res["t"], res["df"] = fit["t"].to_numpy(), fit["df"].to_numpy()
        res["p_value"] = fit["p_value"].to_numpy()
        res["q_value"] = _bh(res["p_value"].to_numpy())
        res["note"] = notes
        tables.append(res)
    require_pairs("differential state", unpaired_only, len(tables), groups, paired_by)
    if not tables:
        return pd.DataFrame(columns=DS_COLUMNS)
    out = pd.concat(tables, ignore_index=True)[DS_COLUMNS]
    return out.sort_values(["modality", "p_value", "cell_type", "marker"], ignore_index=True)


def _mean(Y: np.ndarray) -> np.ndarray | float:
    """Column means over the samples that have a value (NaN where none has)."""
    if not len(Y):
        return np.nan
    with np.errstate(invalid="ignore", divide="ignore"):
        n = (~np.isnan(Y)).sum(axis=0)
        return np.where(n > 0, np.nansum(Y, axis=0) / np.maximum(n, 1), np.nan)


def _untested(
    view: str,
    classes: pd.DataFrame,
    ontology: pd.Series,
    groups: Sequence[str],
    paired_by: str | None,
    covariates: Sequence[str],
    unpaired: Sequence[str],
) -> pd.DataFrame:
    """The rows of a view whose samples all lack a partner: no estimate, the reason said."""
    keys = classes.index
    return pd.DataFrame(
        {
            "modality": view,
            "cell_type": keys.get_level_values(0),
            "cell_ontology_id": keys.get_level_values(0).map(ontology).fillna(""),
            "marker": keys.get_level_values(1),
            "marker_class": classes["marker_class"].to_numpy(),
            "group_a": str(groups[0]),
            "group_b": str(groups[1]),
            "n_samples": 0,
            "n_a": 0,
            "n_b": 0,
            "mean_median_a": np.nan,
            "mean_median_b": np.nan,
            "logFC": np.nan,
            "t": np.nan,
            "df": np.nan,
            "p_value": np.nan,
            "q_value": np.nan,
            "paired_by": paired_by or "",
            "covariates": ",".join(covariates),
            "note": f"not tested: none of the {len(unpaired)} sample(s) has a partner by "
            f"'{paired_by}' in the other group",
        }
    )


def note_barcode_spill(res: pd.DataFrame, pairs: pd.DataFrame, modality: str) -> pd.DataFrame:
    """Add to ``res``'s ``note`` (a :func:`differential_state` table) where a barcode channel
    was estimated to spill into a tested marker's channel that is not compensated (state
    markers never are: ``pairs``, the ``cyto_spillover`` table of ``modality``): a code
    carried by one group only can look like a change of that marker.

    Examples
    --------
    >>> res = pd.DataFrame({"modality": ["cytof", "cytof"], "marker": ["pBtk", "pS6"],
    ...                     "note": ["", ""]})
    >>> pairs = pd.DataFrame({"source": ["BC5(Ho165)Dd"], "marker": ["pBtk"],
    ...                       "spill": [0.0025], "applied": [False]})
    >>> note_barcode_spill(res, pairs, "cytof")["note"].tolist()
    ['barcode BC5(Ho165)Dd spills into this channel (0.25 %, estimated; not compensated)', '']
    """
    spill = pairs[(pairs["spill"] > 0) & ~pairs["applied"].astype(bool)]
    if spill.empty or res.empty:
        return res
    by_marker = {
        m: "; ".join(
            f"barcode {r.source} spills into this channel ({100 * r.spill:.2f} %, estimated; "
            "not compensated)"
            for r in rows.itertuples()
        )
        for m, rows in spill.groupby("marker")
    }
    res = res.copy()
    base = res["modality"].astype(str).str.split(":").str[0]
    text = res["marker"].map(by_marker).where(base == modality)
    hit = text.notna()
    old = res.loc[hit, "note"].fillna("").astype(str)
    res.loc[hit, "note"] = np.where(old == "", text[hit], old + "; " + text[hit])
    return res
