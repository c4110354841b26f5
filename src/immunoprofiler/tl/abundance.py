"""Per-sample cell-type composition (long format)."""

from __future__ import annotations

import pandas as pd

COLUMNS = [
    "sample_id",
    "modality",
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
    return counts[COLUMNS].sort_values(
        ["sample_id", "n_cells"], ascending=[True, False], ignore_index=True
    )
