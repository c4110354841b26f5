"""Rule functions of the cohort profile: wide tables, cross-modality concordance,
differential abundance, pseudobulk, per-sample QC status, provenance.

The sample sheet reaches these steps as the workflow read and validated it
(:func:`immunoprofiler.io.samples.read_sample_sheet`): its descriptive columns, one record
per sample and modality (:func:`immunoprofiler.io.samples.metadata_table`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import anndata as ad
import pandas as pd

from .. import params as P
from .. import provenance
from ..io.h5ad import write_h5ad
from .common import save_figure

SampleRecords = Sequence[Mapping[str, str]] | pd.DataFrame


def _sheet(samples: SampleRecords) -> pd.DataFrame:
    return samples if isinstance(samples, pd.DataFrame) else pd.DataFrame.from_records(samples)


def _by_sample(samples: SampleRecords) -> pd.DataFrame:
    """One row of sheet metadata per ``sample_id`` (its index)."""
    return _sheet(samples).drop_duplicates("sample_id").set_index("sample_id")


def profile_tables(
    composition: str | Path,
    *,
    samples: SampleRecords,
    wide: str | Path,
    lineage_wide: str | Path,
    cross: str | Path,
    scatter: str | Path,
    bars: str | Path,
    cross_panel: str | Path,
    panel_scatter: str | Path,
) -> None:
    """Wide composition tables (cell types, lineages), composition bars of every sample and
    modality, the cross-modality comparison, and the cross-panel comparison of samples
    measured with several panels of one modality (on the lineages and cell types both panels
    resolve)."""
    from ..pl.profile import composition_bars, concordance_scatter
    from ..tl.cohort import cross_modality, wide_composition

    comp, sheet = pd.read_csv(composition, sep="\t"), _sheet(samples)
    wide_composition(comp, sheet, level="cell_type").to_csv(wide, sep="\t", index=False)
    wide_composition(comp, sheet, level="lineage").to_csv(lineage_wide, sep="\t", index=False)
    cm = cross_modality(comp, sheet, within=False)
    cm.to_csv(cross, sep="\t", index=False)
    save_figure(concordance_scatter(cm), scatter)
    panels = {
        level: cross_modality(comp, sheet, level=level, within=True).assign(level=level)
        for level in ("lineage", "cell_type")
    }
    pd.concat(panels.values(), ignore_index=True).to_csv(cross_panel, sep="\t", index=False)
    save_figure(concordance_scatter(panels["lineage"]), panel_scatter)
    save_figure(composition_bars(comp), bars)


def profile_differential_abundance(
    composition: str | Path,
    *,
    samples: SampleRecords,
    table: str | Path,
    figure: str | Path,
    params: P.DifferentialAbundance,
) -> pd.DataFrame:
    """Differential abundance of every cell type and lineage between the contrast's groups."""
    from ..pl.profile import da_forest
    from ..tl.differential import differential_abundance_table

    res = differential_abundance_table(
        pd.read_csv(composition, sep="\t"),
        _sheet(samples),
        transform=params.transform,
        **params.contrast.design(),
    )
    res.to_csv(table, sep="\t", index=False)
    save_figure(da_forest(res), figure)
    return res


def profile_differential_state(
    medians: str | Path,
    composition: str | Path,
    *,
    samples: SampleRecords,
    table: str | Path,
    heatmap: str | Path,
    volcano: str | Path,
    params: P.DifferentialState,
    spill_pairs: Mapping[str, str | Path] | None = None,
) -> pd.DataFrame:
    """Cytometry differential state: every cell type × state marker's per-sample median
    between the contrast's groups (:func:`immunoprofiler.tl.state.differential_state`), from
    the marker-median and composition tables, not the events. ``spill_pairs`` (modality →
    ``cyto_spillover``'s pair table) notes the markers a barcode spills into."""
    from ..pl.profile import ds_heatmap
    from ..pl.profile import volcano as volcano_plot
    from ..tl.state import differential_state, note_barcode_spill

    med = pd.read_csv(medians, sep="\t")
    res = differential_state(
        med[med["modality"] != "rna"],
        pd.read_csv(composition, sep="\t"),
        _by_sample(samples),
        **params.contrast.design(),
        min_cells=params.min_cells,
        marker_classes=params.marker_classes,
    )
    for modality, path in (spill_pairs or {}).items():
        res = note_barcode_spill(res, pd.read_csv(path, sep="\t"), modality)
    res.to_csv(table, sep="\t", index=False)
    save_figure(ds_heatmap(res), heatmap)
    save_figure(
        volcano_plot(
            res, by="modality", effect="logFC", label=lambda r: f"{r.cell_type} {r.marker}"
        ),
        volcano,
    )
    return res


def profile_differential_expression(
    pseudobulk: str | Path,
    *,
    samples: SampleRecords,
    table: str | Path,
    design: str | Path,
    figure: str | Path,
    params: P.DifferentialExpression,
    threads: int = 1,
) -> pd.DataFrame:
    """RNA pseudobulk differential expression per cell type between the contrast's groups
    (:func:`immunoprofiler.tl.expression.differential_expression_table`, PyDESeq2 or
    limma-trend), from the
    cohort's pseudobulk counts, not the cells; ``design``: which samples entered each cell
    type's test, and why the others did not."""
    from ..pl.profile import top_genes
    from ..tl.expression import differential_expression_table

    res, used = differential_expression_table(
        ad.read_h5ad(pseudobulk),
        _by_sample(samples),
        **params.contrast.design(),
        min_cells=params.min_cells,
        threads=threads,
        method=params.method,
    )
    res.to_csv(table, sep="\t", index=False)
    used.to_csv(design, sep="\t", index=False)
    save_figure(top_genes(res), figure)
    return res


def rna_pseudobulk(
    qc: str | Path, annotated: str | Path, out: str | Path, *, metadata: Mapping[str, str]
) -> ad.AnnData | None:
    """One sample's raw counts (all genes, from its QC'd file) summed per annotated cell type,
    with the sample's sheet metadata in ``obs``."""
    from ..failures import read_record, write_record
    from ..io.h5ad import read_obs
    from ..tl.pseudobulk import pseudobulk

    if (failed := read_record(qc)) is not None:  # the sample was excluded: nothing to sum
        write_record(out, failed)
        return None
    adata = ad.read_h5ad(qc)
    labels = read_obs(annotated, columns=["sample_id", "cell_type", "lineage"])
    labels = labels.reindex(adata.obs_names)  # cells removed after QC (doublets) get no label
    counts = adata.layers["counts"] if "counts" in adata.layers else adata.X
    sample_id = metadata["sample_id"]
    pb = pseudobulk(counts, labels, adata.var[[]], sample_id=sample_id)
    for key, value in metadata.items():
        if key not in pb.obs:
            pb.obs[key] = value
    pb.uns["provenance"] = provenance.entry(f"rna_pseudobulk:{sample_id}", inputs=[qc])
    write_h5ad(pb, out)
    return pb


def profile_pseudobulk(
    samples: Sequence[str | Path], *, counts: str | Path, cells: str | Path
) -> ad.AnnData:
    """All samples' pseudobulk profiles in one AnnData (sample × cell type rows), and the cells
    behind each row as a table."""
    from ..failures import split_failed

    parts = [ad.read_h5ad(p) for p in split_failed(samples)[0]]
    pb = ad.concat(parts, join="outer", fill_value=0)
    pb.obs = pb.obs.astype({c: str for c in pb.obs if not pd.api.types.is_numeric_dtype(pb.obs[c])})
    pb.uns = provenance.cohort_uns(
        provenance.merge(*(p.uns.get("provenance") for p in parts)), out=counts
    )
    write_h5ad(pb, counts)
    pb.obs.to_csv(cells, sep="\t", index=False)
    return pb


def profile_qc_status(
    composition: str | Path,
    *,
    out: str | Path,
    figure: str | Path,
    params: P.QcStatus,
    rna_qc: str | Path | None = None,
    cyto_qc: str | Path | None = None,
) -> pd.DataFrame:
    """Per sample and modality: passed QC, or why not (``results/profile/qc_status.tsv``)."""
    import dataclasses

    from ..pl.profile import qc_status_bars
    from ..tl.qc_status import qc_status

    def read(p):
        return pd.read_csv(p, sep="\t") if p else None

    status = qc_status(
        rna_qc=read(rna_qc),
        cyto_qc=read(cyto_qc),
        composition=pd.read_csv(composition, sep="\t"),
        **dataclasses.asdict(params),
    )
    status.to_csv(out, sep="\t", index=False)
    save_figure(qc_status_bars(status), figure)
    return status


def profile_provenance(
    annotated: Sequence[str | Path],
    *,
    table: str | Path,
    config: Mapping[str, Any],
    config_out: str | Path,
    lock: str | Path,
    environment: str | Path,
) -> pd.DataFrame:
    """Every step's library versions, parameters and input checksums, gathered from the
    ``uns["provenance"]`` of the final files, and the configuration the run used; the installed
    packages compared with the lock file (``environment``), whose checksum and differences are
    the ``environment`` row of the table."""
    import yaml

    env = pd.DataFrame(
        provenance.environment_vs_lock(lock), columns=["package", "locked", "installed", "status"]
    )
    env.to_csv(environment, sep="\t", index=False)
    differ = env[env["status"] != "same"]
    steps = provenance.table(provenance.read(*annotated))
    env_row = {
        "step": "environment",
        "params": json.dumps({"packages_differing_from_lock": len(differ)}),
        "inputs": json.dumps({Path(lock).name: provenance.sha256sum(lock)}),
        "versions": json.dumps(
            {
                r.package: f"{r.installed or 'not installed'} (lock {r.locked})"
                for r in differ.itertuples()
            },
            sort_keys=True,
        ),
    }
    df = pd.concat([steps, pd.DataFrame([env_row])], ignore_index=True)
    df.to_csv(table, sep="\t", index=False)
    Path(config_out).write_text(yaml.safe_dump(dict(config), sort_keys=False))
    return df
