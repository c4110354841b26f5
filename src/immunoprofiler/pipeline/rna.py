"""The scRNA-seq chain: one function per rule."""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import anndata as ad
import pandas as pd

from .. import provenance
from ..accelerator import Accelerator
from .common import save_figure as _save

logger = logging.getLogger(__name__)


def rna_ingest(
    path: str | Path,
    out: str | Path,
    *,
    sample_id: str,
    metadata: Mapping[str, str],
    genome: str | None = None,
) -> ad.AnnData:
    """Read one sample into ``out`` with its sheet metadata in ``obs``."""
    from ..io.tenx import read_rna

    adata = read_rna(path, sample_id=sample_id, genome=genome)
    for key, value in metadata.items():
        adata.obs[key] = pd.Categorical([value] * adata.n_obs)
    provenance.record(
        adata,
        f"rna_ingest:{sample_id}",
        params={"genome": genome, "path": str(path)},
        inputs=[path],
    )
    adata.write_h5ad(out)
    return adata


def rna_qc(
    inp: str | Path,
    out: str | Path,
    *,
    table: str | Path,
    plot: str | Path,
    sample_id: str,
    params: Mapping[str, Any],
) -> dict[str, Any]:
    """QC one sample: filtered ``.h5ad``, one-row QC table, QC figure."""
    from ..pl import qc_figure
    from ..pp.quality import qc

    adata = ad.read_h5ad(inp)
    kept, row, cells = qc(adata, sample_id=sample_id, **params)
    provenance.record(kept, f"rna_qc:{sample_id}", params=params)
    _save(qc_figure(cells, row, title=sample_id), plot)
    pd.DataFrame([row]).to_csv(table, sep="\t", index=False)
    kept.write_h5ad(out)
    return row


def rna_normalize(
    inputs: Sequence[str | Path], out: str | Path, *, out_hvg: str | Path, params: Mapping[str, Any]
) -> None:
    """Cohort normalisation and HVGs (see :func:`immunoprofiler.pp.normalize_cohort`)."""
    from ..pp.normalization import normalize_cohort

    normalize_cohort(list(inputs), out=out, out_hvg=out_hvg, **params)


def rna_integrate(
    inp: str | Path,
    out: str | Path,
    *,
    model_dir: str | Path,
    params: Mapping[str, Any],
    accelerator: Accelerator = "cpu",
) -> str:
    """Integrate the HVG matrix; the scVI model goes to ``model_dir``."""
    from ..tl.integration import integrate

    adata = ad.read_h5ad(inp)
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    key = integrate(
        adata,
        **params,
        accelerator=accelerator,
        model_dir=model_dir if params.get("method") == "scvi" else None,
    )
    (model_dir / "integration.json").write_text(
        json.dumps({**dict(params), "accelerator": accelerator, "embedding": key}, indent=2)
    )
    provenance.record(adata, "rna_integrate", params={**dict(params), "accelerator": accelerator})
    adata.write_h5ad(out)
    return key


def rna_cluster(inp: str | Path, out: str | Path, *, params: Mapping[str, Any]) -> None:
    """Neighbours, Leiden and UMAP on the integrated embedding."""
    from ..tl.clustering import cluster

    adata = ad.read_h5ad(inp)
    cluster(adata, use_rep=adata.uns["integration"]["use_rep"], **params)
    provenance.record(adata, "rna_cluster", params=params)
    adata.write_h5ad(out)


def rna_annotate(
    clustered: str | Path,
    normalized: str | Path,
    out: str | Path,
    *,
    markers: str | Path,
    method: str = "markers",
    params: Mapping[str, Any],
    reference: str | Path | None = None,
    reference_label_key: str = "cell_type",
    celltypist_model: str | Path | None = None,
    accelerator: Accelerator = "cpu",
) -> pd.DataFrame:
    """Label cells and write the annotated cohort file (a copy of the normalised one plus labels)."""
    from ..io.h5ad import read_columns, read_uns, read_var, update_h5ad
    from ..tl import annotation as ann

    table = ann.read_marker_table(markers)
    hv = ad.read_h5ad(clustered)
    inputs: list[str | Path] = [markers]
    if method == "markers":
        genes = [g for g in ann.marker_genes(table) if g in read_var(normalized).index]
        sub = ad.AnnData(
            X=read_columns(normalized, genes), obs=hv.obs.copy(), var=pd.DataFrame(index=genes)
        )
        sub.obsp["connectivities"] = hv.obsp["connectivities"]
        ann.annotate(sub, markers=table, **params)
    elif method == "celltypist":
        if not celltypist_model:
            raise ValueError(
                "annotation method 'celltypist' needs config rna.annotate.celltypist_model"
            )
        import celltypist

        norm = json.loads(read_uns(normalized)["provenance"]["rna_normalize"]["params"])
        if norm["target_sum"] != 1e4:
            raise ValueError(
                f"CellTypist models expect log1p of 10,000 counts per cell; the cohort was "
                f"normalised to {norm['target_sum']} (rna.normalize.target_sum)"
            )
        model = celltypist.models.Model.load(str(celltypist_model))
        var = read_var(normalized).index
        genes = [g for g in model.features if g in var]
        sub = ad.AnnData(
            X=read_columns(normalized, genes), obs=hv.obs.copy(), var=pd.DataFrame(index=genes)
        )
        ann.annotate_celltypist(
            sub,
            model=celltypist_model,
            markers=table,
            cluster_key=params.get("cluster_key", "leiden"),
        )
        inputs.append(celltypist_model)
    elif method == "scanvi":
        if not reference:
            raise ValueError("annotation method 'scanvi' needs config rna.annotate.reference")
        sub = hv.copy()
        ann.annotate_scanvi(
            sub,
            reference=ad.read_h5ad(reference),
            label_key=reference_label_key,
            markers=table,
            accelerator=accelerator,
            **{k: v for k, v in params.items() if k in ("max_epochs", "seed", "batch_key")},
        )
        inputs.append(reference)
    else:
        raise ValueError(f"unknown annotation method '{method}' (markers, celltypist, scanvi)")

    obs = hv.obs.copy()
    for col in (*ann.LABEL_COLUMNS, "annotation_group"):
        if col in sub.obs:
            obs[col] = sub.obs[col].to_numpy()
    uns = read_uns(normalized)
    uns["provenance"] = provenance.merge([uns.get("provenance", {}), hv.uns.get("provenance", {})])
    tmp = ad.AnnData(uns={"provenance": uns["provenance"]})
    provenance.record(tmp, "rna_annotate", params={"method": method, **dict(params)}, inputs=inputs)
    uns["provenance"] = tmp.uns["provenance"]
    uns["annotation"] = sub.uns.get("annotation", {"method": method})
    for key in ("integration", "leiden", "umap", "neighbors"):
        if key in hv.uns:
            uns[key] = hv.uns[key]
    obsm = {k: v for k, v in hv.obsm.items()}
    for k, v in sub.obsm.items():
        obsm[k] = v
    tmp_out = Path(f"{out}.partial")
    shutil.copyfile(normalized, tmp_out)
    update_h5ad(tmp_out, obs=obs, obsm=obsm, uns=uns)
    tmp_out.replace(out)
    return obs


def rna_composition(annotated: str | Path, out: str | Path) -> pd.DataFrame:
    """Per-sample composition table of the RNA modality."""
    from ..io.h5ad import read_obs
    from ..tl.abundance import composition

    df = composition(read_obs(annotated), modality="rna")
    df.to_csv(out, sep="\t", index=False)
    return df


def rna_plots(
    annotated: str | Path,
    *,
    markers: str | Path,
    umap: str | Path,
    dotplot: str | Path,
    normalized: str | Path | None = None,
    umap_unintegrated: str | Path | None = None,
    seed: int = 0,
    max_cells: int = 30_000,
) -> None:
    """UMAP (cell type, batch, sample) and marker dot plot of the annotated cohort; with
    ``normalized`` (cells × HVGs before integration) also the UMAP of plain PCA, to show the
    batch effect that integration removed (on a seeded subsample of ``max_cells``)."""
    from ..io.h5ad import read_columns, read_obs, read_obsm, read_var
    from ..pl import marker_dotplot, umap_figure
    from ..tl.annotation import read_marker_table, split_markers

    table = read_marker_table(markers)
    obs, obsm = read_obs(annotated), {"X_umap": read_obsm(annotated, "X_umap")}
    light = ad.AnnData(obs=obs, obsm=obsm)
    _save(umap_figure(light), umap)
    if normalized is not None and umap_unintegrated is not None:
        _save(umap_figure(_unintegrated_umap(normalized, obs, seed, max_cells)), umap_unintegrated)
    var = read_var(annotated).index
    marker_map = {
        t: [g for g in split_markers(p) if g in var][:4]
        for t, p in zip(table["cell_type"], table["positive"], strict=True)
    }
    genes = list(dict.fromkeys(g for v in marker_map.values() for g in v))
    sub = ad.AnnData(X=read_columns(annotated, genes), obs=obs, var=pd.DataFrame(index=genes))
    _save(marker_dotplot(sub, markers=marker_map), dotplot)


def _unintegrated_umap(normalized, obs: pd.DataFrame, seed: int, max_cells: int) -> ad.AnnData:
    """UMAP of PCA on the normalised HVGs (no batch correction), labels from ``obs``."""
    import numpy as np
    import scanpy as sc

    from ..io.h5ad import read_columns, read_obs, read_var

    names = read_obs(normalized, columns=[]).index
    pick = np.flatnonzero(names.isin(obs.index))
    if len(pick) > max_cells:
        pick = np.sort(np.random.default_rng(seed).choice(pick, max_cells, replace=False))
    genes = read_var(normalized).index
    a = ad.AnnData(  # only the picked rows of X: not the whole matrix, not its counts layer
        X=read_columns(normalized, genes, rows=pick),
        obs=obs.loc[names[pick], [c for c in ("cell_type", "batch", "sample_id") if c in obs]],
        var=pd.DataFrame(index=genes),
    )
    sc.pp.pca(a, n_comps=min(30, a.n_vars - 1, a.n_obs - 1), random_state=seed)
    sc.pp.neighbors(a, random_state=seed)
    sc.tl.umap(a, random_state=seed)
    return a


def rna_bam_count(
    bam: str | Path,
    *,
    out_raw: str | Path,
    out_filtered: str | Path,
    table: str | Path,
    sample_id: str,
    params: Mapping[str, Any],
    threads: int = 1,
) -> dict[str, Any]:
    """Aligned BAM → raw (all barcodes) and filtered (called cells) 10x ``.h5`` matrices and a
    one-row summary (see :func:`immunoprofiler.io.bam.count_bam`)."""
    import numpy as np

    from ..datasets.writers import write_10x_h5
    from ..io.bam import BamCountParams, BamError, count_bam, count_matrix
    from ..pp.cellcalling import call_cells

    p = dict(params)
    calling = {
        k: p.pop(k)
        for k in ("cell_calling", "expected_cells", "lower", "fdr", "n_iter", "seed")
        if k in p
    }
    umi_correction = p.pop("umi_correction", "exact")
    for key in ("gene_tags", "gene_name_tags"):
        if key in p:
            p[key] = tuple(p[key])
    try:
        counts = count_bam(bam, BamCountParams(**p), threads=threads)
    except BamError as err:
        raise BamError(f"sample {sample_id}: {err}") from err
    X = count_matrix(counts, umi_correction=umi_correction)
    cells, info = call_cells(
        X,
        method=calling.get("cell_calling", "inflection"),
        expected_cells=calling.get("expected_cells"),
        lower=calling.get("lower", 100),
        fdr=calling.get("fdr", 0.01),
        n_iter=calling.get("n_iter", 1000),
        seed=calling.get("seed", 0),
    )
    var = pd.DataFrame({"gene_ids": counts.gene_ids}, index=pd.Index(counts.gene_names))
    raw = ad.AnnData(X=X, obs=pd.DataFrame(index=counts.barcodes), var=var)
    Path(out_raw).parent.mkdir(parents=True, exist_ok=True)
    write_10x_h5(raw, out_raw)
    write_10x_h5(raw[cells], out_filtered)
    umis_per_cell = np.asarray(X[cells].sum(axis=1)).ravel()
    n_umis = int(X.sum())
    row = {
        "sample_id": sample_id,
        **counts.summary,
        "barcodes": len(counts.barcodes),
        "umis": n_umis,
        "cells": int(cells.sum()),
        "umis_in_cells": int(umis_per_cell.sum()),
        "median_umis_per_cell": float(np.median(umis_per_cell)) if len(umis_per_cell) else 0.0,
        "sequencing_saturation": round(1 - n_umis / counts.summary["reads_counted"], 4)
        if counts.summary["reads_counted"]
        else 0.0,
        "cell_calling": info["method"],
        "inflection": info["inflection"],
        "knee": info["knee"],
    }
    pd.DataFrame([row]).to_csv(table, sep="\t", index=False)
    logger.info(
        "%s: %d cells, %d UMIs from %d reads", sample_id, row["cells"], n_umis, row["reads_total"]
    )
    return row
