"""Per-sample cell-type composition (long format)."""

from __future__ import annotations

import pandas as pd

COLUMNS = [
    "sample_id",
    "modality",
    "panel_group",
    "cell_type",
    "cell_ontology_id",
    "lineage",
    "n_cells",
    "fraction",
]


def composition(obs: pd.DataFrame, *, modality: str, sample_key: str = "sample_id") -> pd.DataFrame:
    """Cells per sample and cell type, with fractions that sum to 1 within each sample.

    Examples
    --------
    >>> composition(adata.obs, modality="rna").head()  # doctest: +SKIP
    """
    need = [sample_key, "cell_type", "cell_ontology_id", "lineage"]
    missing = [c for c in need if c not in obs]
    if missing:
        raise KeyError(f"obs lacks {missing}: annotate the cells first")
    df = obs[need].astype(str)
    counts = df.groupby(need, observed=True).size().rename("n_cells").reset_index()
    counts["fraction"] = counts["n_cells"] / counts.groupby(sample_key)["n_cells"].transform("sum")
    counts = counts.rename(columns={sample_key: "sample_id"})
    counts.insert(1, "modality", modality)
    # cytometry: the panel group the events were analysed in (one per sample); RNA: none
    group = (
        obs.groupby(sample_key, observed=True)["panel_group"].first().astype(str)
        if ("panel_group" in obs)
        else pd.Series(dtype=str)
    )
    counts.insert(2, "panel_group", counts["sample_id"].map(group).fillna(""))
    return counts[COLUMNS].sort_values(
        ["sample_id", "n_cells"], ascending=[True, False], ignore_index=True
    )


def views(composition: pd.DataFrame) -> pd.Series:
    """What each row of a composition table was measured as: its modality, or
    ``<modality>:<panel group>`` for a modality whose samples were analysed in several panel
    groups (fractions from different panels are compared, not pooled).

    Examples
    --------
    >>> views(comp).unique()  # doctest: +SKIP
    array(['cytof:lineage', 'cytof:myeloid', 'rna'], dtype=object)
    """
    group = (
        composition["panel_group"].fillna("").astype(str)
        if "panel_group" in composition
        else pd.Series("", index=composition.index)
    )
    several = group.groupby(composition["modality"]).transform("nunique") > 1
    return composition["modality"].where(~several, composition["modality"] + ":" + group)
