"""Helpers shared by the rule functions of every modality."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd

from .. import provenance


def save_figure(fig, path: str | Path) -> None:
    """Write a matplotlib figure as PNG and close it."""
    import matplotlib.pyplot as plt

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def concat_tables(tables: Sequence[str | Path], out: str | Path) -> pd.DataFrame:
    """Concatenate TSV tables with the same columns (per-sample rows into a cohort table)."""
    df = pd.concat([pd.read_csv(t, sep="\t") for t in tables], ignore_index=True)
    df.to_csv(out, sep="\t", index=False)
    return df


def write_annotation(
    out: str | Path,
    *,
    normalized: str | Path,
    clustered: ad.AnnData,
    labelled: ad.AnnData,
    step: str,
    params: Any,
    inputs: Iterable[str | Path],
    obsm: Mapping[str, np.ndarray],
    uns: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """The annotated cohort file of a modality (RNA and cytometry alike): the normalised
    cohort with the clustered file's ``obs`` plus the labels of ``labelled`` (cell type,
    ontology id, lineage, score, annotation group), ``obsm`` added, ``uns["annotation"]``,
    the extra ``uns`` entries, and the merged provenance with the step's own entry.

    Returns the ``obs`` written.
    """
    from ..io.h5ad import read_uns, write_annotated
    from ..tl.annotation import LABEL_COLUMNS

    obs = clustered.obs.copy()
    for col in (*LABEL_COLUMNS, "annotation_group"):
        if col in labelled.obs:
            obs[col] = labelled.obs[col].to_numpy()
    out_uns = read_uns(normalized)
    out_uns["provenance"] = provenance.merge(
        out_uns.get("provenance"),
        clustered.uns.get("provenance"),
        provenance.entry(step, params=params, inputs=inputs),
    )
    out_uns["annotation"] = labelled.uns["annotation"]
    out_uns.update(uns or {})
    write_annotated(normalized, out, obs=obs, obsm=obsm, uns=out_uns)
    return obs
