"""Helpers shared by the rule functions of every modality."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .. import provenance

if TYPE_CHECKING:
    from ..io.h5ad import ObsBlocks


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
    clustered: str | Path,
    labels: Mapping[str, Any] | ObsBlocks,
    annotation: Mapping[str, Any],
    step: str,
    params: Any,
    inputs: Iterable[str | Path],
    obsm: Mapping[str, np.ndarray] | None = None,
    uns: Sequence[str] = (),
) -> None:
    """The annotated cohort file of a modality (RNA and cytometry alike): the normalised
    cohort (its matrices linked, not copied: :func:`~immunoprofiler.io.h5ad.derive_h5ad`)
    with the clustered file's ``obs`` and ``obsm`` plus the ``labels`` columns (cell type,
    ontology id, lineage, score, annotation group; whole, or an
    :class:`~immunoprofiler.io.h5ad.ObsBlocks` written a file at a time) and ``obsm`` entries,
    ``uns["annotation"]``, the clustered file's ``uns`` entries named in ``uns``, and the
    merged provenance with the step's own entry. Neither file's ``obs`` is
    read: it is copied inside HDF5.
    """
    from ..io.h5ad import ObsBlocks, derive_h5ad, read_uns

    extra = read_uns(clustered)
    out_uns = provenance.updated(
        read_uns(normalized),
        provenance.merge(
            extra.get("provenance"), provenance.entry(step, params=params, inputs=inputs)
        ),
        out=out,
        inputs=[normalized, clustered],
    )
    out_uns["annotation"] = dict(annotation)
    out_uns.update({k: extra[k] for k in uns if k in extra})
    derive_h5ad(
        out,
        obs_from=clustered,
        add_obs=None if isinstance(labels, ObsBlocks) else labels,
        obs_blocks=labels if isinstance(labels, ObsBlocks) else None,
        matrices_from=normalized,
        obsm=obsm,
        uns=out_uns,
    )
