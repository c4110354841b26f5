"""Rule functions of the cohort profile: wide tables, cross-modality concordance,
differential abundance."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import anndata as ad
import pandas as pd

from .. import provenance
from .common import save_figure


def _read_sheet(path: str | Path) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)


def profile_tables(
    composition: str | Path,
    samples: str | Path,
    *,
    wide: str | Path,
    lineage_wide: str | Path,
    cross: str | Path,
    scatter: str | Path,
    bars: str | Path,
) -> None:
    """Wide composition tables (cell types, lineages), composition bars of every sample and
    modality, and the cross-modality comparison."""
    from ..pl.profile import composition_bars, concordance_scatter
    from ..tl.cohort import cross_modality, wide_composition

    comp, sheet = pd.read_csv(composition, sep="\t"), _read_sheet(samples)
    wide_composition(comp, sheet, level="cell_type").to_csv(wide, sep="\t", index=False)
    wide_composition(comp, sheet, level="lineage").to_csv(lineage_wide, sep="\t", index=False)
    cm = cross_modality(comp, sheet)
    cm.to_csv(cross, sep="\t", index=False)
    save_figure(concordance_scatter(cm), scatter)
    save_figure(composition_bars(comp), bars)


def profile_differential_abundance(
    composition: str | Path,
    samples: str | Path,
    *,
    table: str | Path,
    figure: str | Path,
    column: str,
    groups: Sequence[str],
    paired_by: str | None = None,
    transform: str = "log_ratio",
) -> pd.DataFrame:
    """Differential abundance of every cell type and lineage between the contrast's groups."""
    from ..pl.profile import da_forest
    from ..tl.differential import differential_abundance_table

    comp, sheet = pd.read_csv(composition, sep="\t"), _read_sheet(samples)
    res = differential_abundance_table(
        comp, sheet, column=column, groups=groups, paired_by=paired_by or None, transform=transform
    )
    res.to_csv(table, sep="\t", index=False)
    save_figure(da_forest(res), figure)
    return res


def rna_pseudobulk(qc: str | Path, annotated: str | Path, out: str | Path) -> ad.AnnData:
    """One sample's raw counts (all genes, from its QC'd file) summed per annotated cell type."""
    from ..io.h5ad import read_obs
    from ..tl.pseudobulk import pseudobulk

    adata = ad.read_h5ad(qc)
    labels = read_obs(annotated, columns=["sample_id", "cell_type", "lineage"])
    labels = labels.reindex(adata.obs_names)  # cells removed after QC (doublets) get no label
    counts = adata.layers["counts"] if "counts" in adata.layers else adata.X
    sample_id = str(adata.obs["sample_id"].iloc[0])
    pb = pseudobulk(counts, labels, adata.var[[]], sample_id=sample_id)
    meta = {k: str(adata.obs[k].iloc[0]) for k in adata.obs if _is_sample_level(adata.obs[k])}
    for key, value in meta.items():
        if key not in pb.obs:
            pb.obs[key] = value
    provenance.record(pb, f"rna_pseudobulk:{sample_id}", inputs=[qc])
    pb.write_h5ad(out)
    return pb


def _is_sample_level(col: pd.Series) -> bool:
    """A sheet column carried into obs: one value for the whole sample, not a number per cell."""
    return not pd.api.types.is_numeric_dtype(col) and col.nunique(dropna=False) == 1


def profile_pseudobulk(
    samples: Sequence[str | Path], *, counts: str | Path, cells: str | Path
) -> ad.AnnData:
    """All samples' pseudobulk profiles in one AnnData (sample × cell type rows), and the cells
    behind each row as a table."""
    parts = [ad.read_h5ad(p) for p in samples]
    pb = ad.concat(parts, join="outer", fill_value=0)
    pb.obs = pb.obs.astype({c: str for c in pb.obs if not pd.api.types.is_numeric_dtype(pb.obs[c])})
    pb.uns["provenance"] = provenance.merge(p.uns.get("provenance", {}) for p in parts)
    pb.write_h5ad(counts)
    pb.obs.to_csv(cells, sep="\t", index=False)
    return pb


def profile_qc_status(
    composition: str | Path,
    *,
    out: str | Path,
    figure: str | Path,
    rna_qc: str | Path | None = None,
    cyto_qc: str | Path | None = None,
    thresholds: dict | None = None,
) -> pd.DataFrame:
    """Per sample and modality: passed QC, or why not (``results/profile/qc_status.tsv``)."""
    from ..pl.profile import qc_status_bars
    from ..tl.qc_status import qc_status

    def read(p):
        return pd.read_csv(p, sep="\t") if p else None

    status = qc_status(
        rna_qc=read(rna_qc),
        cyto_qc=read(cyto_qc),
        composition=pd.read_csv(composition, sep="\t"),
        **(thresholds or {}),
    )
    status.to_csv(out, sep="\t", index=False)
    save_figure(qc_status_bars(status), figure)
    return status


def profile_provenance(
    annotated: Sequence[str | Path], *, table: str | Path, config: dict, config_out: str | Path
) -> pd.DataFrame:
    """Every step's library versions, parameters and input checksums, gathered from the
    ``uns["provenance"]`` of the final files, and the configuration the run used."""
    import json

    import yaml

    from ..io.h5ad import read_uns

    rows = {}
    for path in annotated:
        for step, rec in read_uns(path).get("provenance", {}).items():
            rows[step] = {
                "step": step,
                "params": rec.get("params", "{}"),
                "inputs": json.dumps(dict(rec.get("inputs", {})), sort_keys=True),
                "versions": json.dumps(dict(rec.get("versions", {})), sort_keys=True),
            }
    df = pd.DataFrame(sorted(rows.values(), key=lambda r: r["step"]))
    df.to_csv(table, sep="\t", index=False)
    Path(config_out).write_text(yaml.safe_dump(config, sort_keys=False))
    return df
