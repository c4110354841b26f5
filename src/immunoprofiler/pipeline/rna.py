"""The scRNA-seq chain: one function per rule.

Per sample: (``rna_bam_count`` →) ``rna_ingest`` → ``rna_qc``. Cohort: ``rna_normalize``
→ ``rna_integrate`` → ``rna_cluster`` → ``rna_annotate`` → ``rna_composition`` /
``rna_plots``. Each function reads its inputs, calls the package's science, writes its
outputs and adds its provenance entry; parameters come as the step's dataclass from
:mod:`immunoprofiler.params`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd

from .. import params as P
from .. import provenance
from ..accelerator import Accelerator
from ..failures import excluded_table, per_sample, split_failed
from ..io.h5ad import BLOCK_ROWS, write_h5ad
from .common import save_figure, write_annotation

logger = logging.getLogger(__name__)

#: cells per block where a cohort step reads its samples' matrices block by block
BLOCK = BLOCK_ROWS


@per_sample(
    "rna_bam_count", inputs=("bam",), outputs=("out_raw", "out_filtered", "table"), modality="rna"
)
def rna_bam_count(
    bam: str | Path,
    *,
    out_raw: str | Path,
    out_filtered: str | Path,
    table: str | Path,
    sample_id: str,
    params: P.RnaBamCount,
    threads: int = 1,
) -> dict[str, Any]:
    """Aligned BAM → raw (all barcodes) and filtered (called cells) 10x ``.h5`` matrices and a
    one-row summary (see :func:`immunoprofiler.io.bam.count_bam`)."""
    from ..io.bam import BamError, count_bam, count_matrix

    try:
        counts = count_bam(bam, params.reads, threads=threads)
    except BamError as err:
        raise BamError(f"sample {sample_id}: {err}") from err
    X = count_matrix(counts, umi_correction=params.umi_correction)
    calling = P.CellCalling(
        params.cell_calling, params.expected_cells, params.lower, params.fdr, params.n_iter
    )
    var = pd.DataFrame({"gene_ids": counts.gene_ids}, index=pd.Index(counts.gene_names))
    raw = ad.AnnData(X=X, obs=pd.DataFrame(index=counts.barcodes), var=var)
    row = _call_and_write(raw, calling, params.seed, out_raw, out_filtered, counts.summary)
    row = {"sample_id": sample_id, **row}
    pd.DataFrame([row]).to_csv(table, sep="\t", index=False)
    logger.info(
        "%s: %d cells, %d UMIs from %d reads",
        sample_id,
        row["cells"],
        row["umis"],
        row["reads_total"],
    )
    return row


def _call_and_write(
    raw: ad.AnnData,
    calling: P.CellCalling,
    seed: int,
    out_raw: str | Path,
    out_filtered: str | Path,
    reads: Mapping[str, Any],
) -> dict[str, Any]:
    """Call cells on ``raw`` (every barcode), write the raw and filtered 10x ``.h5``
    matrices; the calling summary (:func:`immunoprofiler.pp.cellcalling.calling_summary`)."""
    from ..io.tenx import write_10x_h5
    from ..pp.cellcalling import call_cells, calling_summary

    cells, info = call_cells(
        raw.X,
        method=calling.method,
        expected_cells=calling.expected_cells,
        lower=calling.lower,
        fdr=calling.fdr,
        n_iter=calling.n_iter,
        seed=seed,
    )
    Path(out_raw).parent.mkdir(parents=True, exist_ok=True)
    write_10x_h5(raw, out_raw)
    write_10x_h5(raw[cells], out_filtered)
    return calling_summary(raw.X, cells, info, reads)


def rna_reference(
    fasta: str | Path,
    gtf: str | Path,
    *,
    out: str | Path,
    params: P.RnaQuantify,
    threads: int = 1,
    memory_mb: int = 4000,
) -> pd.DataFrame:
    """Build the FASTQ samples' index in ``out`` (:func:`immunoprofiler.quant.build_index`),
    with the reference's gene table and a provenance record (``provenance.json``)."""
    from ..quant import build_index

    genes = build_index(
        params.quantifier,
        fasta,
        gtf,
        out,
        features=params.features,
        threads=threads,
        memory_mb=memory_mb,
    )
    entry = provenance.entry(
        "rna_reference",
        params={"quantifier": params.quantifier, "features": params.features},
        inputs=[fasta, gtf],
    )
    (Path(out) / "provenance.json").write_text(json.dumps(entry, indent=1, default=str))
    logger.info("%s index of %d genes in %s", params.quantifier, len(genes), out)
    return genes


@per_sample(
    "rna_quantify",
    inputs=("index",),
    outputs=("out_raw", "out_filtered", "table", "bam"),
    file="fastq_1",
    modality="rna",
)
def rna_quantify(
    fastq_1: Sequence[str],
    fastq_2: Sequence[str],
    index: str | Path,
    *,
    out_raw: str | Path,
    out_filtered: str | Path,
    table: str | Path,
    workdir: str | Path,
    sample_id: str,
    params: P.RnaQuantify,
    bam: str | Path | None = None,
    whitelist_file: str | Path | None = None,
    threads: int = 1,
    memory_mb: int = 4000,
) -> dict[str, Any]:
    """One sample's FASTQ read pairs → raw and filtered 10x ``.h5`` matrices and a one-row
    Cell Ranger ``metrics_summary``-like table.

    The files are checked first (present, gzip, complete to their end: a truncated file is
    this sample's error, not a short count), the chemistry detected or checked from the first
    reads (:func:`immunoprofiler.io.chemistry.detect_chemistry`, logged), the reads counted
    by ``params.quantifier`` (:func:`immunoprofiler.quant.quantify`; working files in
    ``workdir``, removed after) and cells called on the raw matrix.
    """
    import shutil

    from ..io.chemistry import candidate_whitelists, detect_chemistry
    from ..io.fastq import ReadPair, check_reads, iter_records, q30_fractions
    from ..quant import quantify

    pairs = [ReadPair(Path(a), Path(b)) for a, b in zip(fastq_1, fastq_2, strict=True)]
    check_reads(pairs, sample_id, threads=threads)
    lists = candidate_whitelists(params.chemistry, params.whitelist, whitelist_file)
    if not lists:
        logger.warning("%s: rna.whitelist 'none': barcodes counted uncorrected", sample_id)
    r1 = [s for s, _ in iter_records(pairs[0].r1, sample_id, limit=20_000)]
    chemistry, evidence = detect_chemistry(r1, lists, sample=sample_id, configured=params.chemistry)
    logger.info("%s: chemistry %s (%s)", sample_id, chemistry.name, json.dumps(evidence))
    quality = q30_fractions(pairs, chemistry.barcode, chemistry.umi, sample_id)
    try:  # the tool's messages are in the error; its working files go either way
        counts = quantify(
            params.quantifier,
            pairs,
            index,
            Path(workdir),
            chemistry=chemistry,
            whitelist=lists.get(chemistry.whitelist),
            features=params.features,
            threads=threads,
            memory_mb=memory_mb,
            bam=bam if params.keep_bam else None,
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    raw = counts.to_anndata(index)
    stats = counts.stats
    mapped = stats["reads_mapped_to_genes"] or 0.0
    reads = {"reads_total": stats["reads"]}
    reads["reads_counted"] = int(stats["reads"] * mapped * (stats["valid_barcodes"] or 1.0))
    called = _call_and_write(raw, params.cell_calling, params.seed, out_raw, out_filtered, reads)
    row = {
        "sample_id": sample_id,
        "quantifier": params.quantifier,
        "chemistry": chemistry.name,
        "chemistry_evidence": json.dumps(evidence),
        "features": params.features,
        "files": 2 * len(pairs),
        **{k: v for k, v in stats.items() if k != "reads"},
        **quality,
        **called,
    }
    pd.DataFrame([row]).to_csv(table, sep="\t", index=False)
    logger.info(
        "%s: %d reads, %d cells, median %s UMIs per cell",
        sample_id,
        row["reads_total"],
        row["cells"],
        row["median_umis_per_cell"],
    )
    return row


@per_sample("rna_ingest", inputs=("path",), outputs=("out",), modality="rna")
def rna_ingest(
    path: str | Path,
    out: str | Path,
    *,
    sample_id: str,
    metadata: Mapping[str, str],
    params: P.RnaIngest,
) -> ad.AnnData:
    """Read one sample into ``out`` with its sheet metadata in ``obs``."""
    from ..io.samples import add_metadata
    from ..io.tenx import read_rna

    adata = read_rna(path, sample_id=sample_id, genome=params.genome)
    add_metadata(adata, metadata)
    adata.uns["provenance"] = provenance.entry(
        f"rna_ingest:{sample_id}",
        params={**dataclasses.asdict(params), "path": str(path)},
        inputs=[path],
    )
    write_h5ad(adata, out)
    return adata


@per_sample("rna_qc", inputs=("inp",), outputs=("out", "table", "plot"), modality="rna")
def rna_qc(
    inp: str | Path,
    out: str | Path,
    *,
    table: str | Path,
    plot: str | Path,
    sample_id: str,
    params: P.RnaQc,
) -> dict[str, Any]:
    """QC one sample: filtered ``.h5ad``, one-row QC table, QC figure."""
    from ..pl import qc_figure
    from ..pp.quality import qc

    adata = ad.read_h5ad(inp)
    kept, row, cells = qc(adata, sample_id=sample_id, **dataclasses.asdict(params))
    kept.uns["provenance"] = provenance.merge(
        kept.uns.get("provenance"), provenance.entry(f"rna_qc:{sample_id}", params=params)
    )
    save_figure(qc_figure(cells, row, title=sample_id), plot)
    pd.DataFrame([row]).to_csv(table, sep="\t", index=False)
    write_h5ad(kept, out)
    return row


def _batches(obs_of: Mapping[str | Path, pd.DataFrame]) -> tuple[dict[str, list], dict[str, str]]:
    """The files of each batch and each file's sample, from each file's ``obs`` (one batch
    per sample, checked)."""
    from ..pp.normalization import BATCH_KEY

    files_of: dict[str, list[str | Path]] = {}
    sample_of: dict[str, str] = {}
    for p, obs in obs_of.items():
        missing = [c for c in (BATCH_KEY, "sample_id") if c not in obs]
        if missing:
            raise KeyError(f"{p}: obs has no column(s) {missing}")
        sample_of[str(p)] = str(obs["sample_id"].iloc[0]) if len(obs) else str(p)
        batches = obs[BATCH_KEY].astype(str).unique()
        if len(batches) != 1:
            raise ValueError(
                f"{p}: expected one value of '{BATCH_KEY}' per sample, got {list(batches)}"
            )
        files_of.setdefault(batches[0], []).append(p)
    return files_of, sample_of


def _cohort_hvg(files_of: Mapping[str, list], genes: pd.Index, n_top_genes: int) -> pd.DataFrame:
    """seurat_v3 HVGs over the batches, each batch's statistics in two passes over blocks
    of its counts (:func:`~immunoprofiler.pp.normalization.hvg_stats`): memory is one
    block, whatever the batch's size."""
    from ..io.h5ad import iter_columns
    from ..pp.normalization import combine_hvg, hvg_stats

    stats = {}
    for batch, files in files_of.items():

        def blocks(files=files):  # the batch's counts, BLOCK cells at a time
            for p in files:
                yield from iter_columns(p, genes, layer="counts", chunk_size=BLOCK)

        stats[batch] = hvg_stats(blocks, n_genes=len(genes)).set_axis(genes)
        logger.info(
            "batch %s: %d cells, HVG statistics done", batch, stats[batch]["n_cells"].iloc[0]
        )
    return combine_hvg(stats, n_top_genes=n_top_genes)


def _protein_panel(paths, sample_of, mode) -> tuple[list[str], dict[str, list[str]], dict]:
    """The cohort's antibody panel, each file's antibodies and the ``uns`` entries that
    record them (none without antibody capture)."""
    from ..io.h5ad import read_uns
    from ..pp.normalization import protein_panel

    antibodies = {str(p): list(read_uns(p).get("protein_names", [])) for p in paths}
    panel = protein_panel(antibodies, mode=mode)
    if not panel:
        return panel, antibodies, {}
    logger.info("antibody panel (%s): %d antibodies", mode, len(panel))
    missing = {sample_of[p]: [a for a in panel if a not in n] for p, n in antibodies.items()}
    return (
        panel,
        antibodies,
        {"protein_names": panel, "protein_panel": {"mode": mode, "missing": missing}},
    )


def rna_normalize(
    inputs: Sequence[str | Path], out: str | Path, *, out_hvg: str | Path, params: P.RnaNormalize
) -> pd.DataFrame:
    """Cohort normalisation into one file (all genes) and its highly variable genes into a
    second: HVG statistics of each batch in two passes over blocks of its counts, then the
    samples' counts read lazily (dask), shifted-log normalised by scanpy and written by
    anndata one block of cells at a time (memory: a block, not a sample, batch or the
    cohort). Returns the ``var`` written."""
    import dask.array as da

    from ..io.h5ad import lazy_matrix, matrix_nbytes, read_obs, read_obsm, read_var
    from ..pp.normalization import BATCH_KEY, align_proteins, common_genes, normalize

    paths, excluded = split_failed(inputs)
    genes = common_genes({str(p): read_var(p).index for p in paths})
    parts = [read_obs(p) for p in paths]  # each sample's obs, read once
    files_of, sample_of = _batches(dict(zip(paths, parts, strict=True)))
    var = _cohort_hvg(files_of, genes, params.n_top_genes)
    hvg = var["highly_variable"].to_numpy()
    first = read_var(paths[0])  # gene annotation (per-sample QC statistics are not carried)
    keep = [c for c in ("gene_ids", "feature_types", "mt", "ribo", "hb") if c in first.columns]
    var = var.join(first[keep].reindex(var.index))
    panel, antibodies, protein_uns = _protein_panel(paths, sample_of, params.proteins)
    entry = provenance.entry("rna_normalize", params=params)
    uns: dict[str, Any] = {
        **provenance.cohort_uns(provenance.merge(provenance.read(*paths), entry), out=out),
        "hvg": {"flavor": "seurat_v3", "batch_key": BATCH_KEY},
        "excluded_samples": excluded_table(excluded),
        **protein_uns,
    }
    # the HVG file names the full file for the per-sample provenance (kept once)
    uns_hvg = {k: v for k, v in uns.items() if k != provenance.SAMPLES}
    uns_hvg[provenance.SAMPLES_IN] = os.path.relpath(
        Path(out).resolve(), Path(out_hvg).resolve().parent
    )
    obs = pd.concat(parts, join="outer")
    for col in obs.columns:  # a column some samples lack (NaN there) comes back as object
        if obs[col].dtype == object:
            obs[col] = obs[col].astype(str).astype("category")
    cohort = ad.AnnData(obs=obs, var=var, uns=uns)
    cohort.layers["counts"] = da.concatenate(
        [lazy_matrix(p, "counts", columns=genes, chunk_size=BLOCK) for p in paths]
    )
    if panel:  # one column per antibody of the panel, NaN where not stained
        cohort.obsm["protein"] = np.concatenate(
            [
                align_proteins(
                    read_obsm(p, "protein") if antibodies[str(p)] else None,
                    antibodies[str(p)],
                    panel,
                    n_obs=len(o),
                )
                for p, o in zip(paths, parts, strict=True)
            ]
        )
    normalize(cohort, target_sum=params.target_sum)
    # on disk: X and counts, each nonzero a float32 value and an int64 column index
    nbytes = 3 * sum(matrix_nbytes(p, "counts") for p in paths)
    write_h5ad(cohort, out, nbytes=int(nbytes))
    small = ad.AnnData(
        X=cohort.X[:, hvg],
        obs=obs,
        var=var.loc[hvg],
        layers={"counts": cohort.layers["counts"][:, hvg]},
        uns={**uns_hvg, "log1p": cohort.uns["log1p"]},
    )  # the HVG file is the integration input: genes only, no antibodies
    write_h5ad(small, out_hvg, nbytes=int(nbytes * hvg.mean()))
    logger.info("cohort: %d cells, %d genes, %d highly variable", len(obs), len(var), hvg.sum())
    return var


def rna_integrate(
    inp: str | Path,
    out: str | Path,
    *,
    model_dir: str | Path,
    params: P.RnaIntegrate,
    accelerator: Accelerator = "cpu",
    memory_mb: float | None = None,
) -> str:
    """Integrate the HVG matrix; ``model_dir`` gets ``integration.json`` (and the scVI model).

    scVI reads the HVG file's counts into memory when they take at most a third of
    ``memory_mb`` (the job's memory; ``None``: no limit), else it trains from disk, its
    minibatches read from the file as they are used
    (:func:`~immunoprofiler.io.h5ad.layer_as_X`): memory then follows the cells, not the
    counts. The two ways train the same model on the same minibatches, but a backed
    minibatch is read in sorted order, which changes floating-point sums, so their
    embeddings are not identical (each is reproducible). Harmony and PCA take the PCA of the
    shifted-log ``X`` read lazily as a dask array (:func:`~immunoprofiler.io.h5ad.lazy_X`).
    The output holds only what the step adds (the embedding, ``uns``): its matrices are links
    to the HVG file's (:func:`~immunoprofiler.io.h5ad.derive_h5ad`)."""
    from ..io.h5ad import derive_h5ad, layer_as_X, lazy_X, matrix_nbytes, read_uns
    from ..pp.normalization import BATCH_KEY
    from ..tl.integration import integrate

    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    if params.method == "scvi":
        counts_mb = matrix_nbytes(inp, "counts") / 2**20
        from_disk = memory_mb is not None and counts_mb > memory_mb / 3
        logger.info(
            "scVI: the HVG counts take %.0f MB in memory (job memory %s MB): %s",
            counts_mb,
            "unlimited" if memory_mb is None else f"{memory_mb:.0f}",
            "training from disk" if from_disk else "read into memory",
        )
        data = layer_as_X(inp, "counts", obs=[BATCH_KEY], backed=from_disk)
    else:
        data = lazy_X(inp, obs=[BATCH_KEY])
    with data as adata:
        key = integrate(
            adata,
            **dataclasses.asdict(params),
            batch_key=BATCH_KEY,
            counts_layer=None,
            accelerator=accelerator,
            model_dir=model_dir if params.method == "scvi" else None,
        )
        # scvi-tools' own registry keys (_scvi_*) stay with the saved model
        emb = adata.obsm[key]
        added = {k: v for k, v in adata.uns.items() if not k.startswith("_scvi")}
    settings = {**dataclasses.asdict(params), "accelerator": accelerator}
    (model_dir / "integration.json").write_text(
        json.dumps({**settings, "embedding": key}, indent=2)
    )
    uns = provenance.updated(
        {**read_uns(inp), **added},
        provenance.entry("rna_integrate", params=settings),
        out=out,
        inputs=[inp],
    )
    derive_h5ad(out, obs_from=inp, matrices_from=inp, obsm={key: emb}, uns=uns)
    return key


def rna_cluster(
    inp: str | Path, out: str | Path, *, params: P.RnaCluster, threads: int = 1
) -> None:
    """Neighbours, Leiden and UMAP on the integrated embedding; and, for the figure of the
    batch effect integration removed, the UMAP of plain PCA on the HVGs (no batch correction)
    of the cells the UMAP was fitted on (``obsm["X_umap_uncorrected"]``, NaN elsewhere).
    With ``threads`` ≥ 2 that second UMAP runs in a second process while this one builds
    the graph (NN-descent on ``threads`` threads: identical on rerun with the same
    threads), clusters and fits the main UMAP: the same result, one UMAP's time sooner.

    Reads ``obs``, ``uns``, the embedding and the fitted cells' HVG rows, not the matrices;
    writes the cells' clusters, graph and embeddings without the HVG matrices (``rna_annotate``
    takes those, when it needs them, from the integrated file)."""
    from ..io.h5ad import read_columns, read_obs, read_obsm, read_uns, read_var
    from ..tl.clustering import cluster, umap_rows
    from ..tl.embedding import pca, umap, umap_elsewhere

    uns = read_uns(inp)
    use_rep = uns["integration"]["use_rep"]
    adata = ad.AnnData(obs=read_obs(inp), obsm={use_rep: read_obsm(inp, use_rep)}, uns=uns)
    rows = umap_rows(adata.obs, params.umap_cells, params.seed)  # the UMAP's fitted cells
    ordered = np.sort(rows)  # read in file order, used in the fitted order
    X = read_columns(inp, list(read_var(inp).index), rows=ordered)[np.searchsorted(ordered, rows)]
    pcs = pca(X, n_comps=30, seed=params.seed)
    uncorrected = {"min_dist": params.umap_min_dist, "seed": params.seed}
    # below 2,000 cells starting a second process costs more than it saves
    later = umap_elsewhere(pcs, **uncorrected) if threads > 1 and len(rows) > 2_000 else None
    fitted = cluster(adata, use_rep=use_rep, n_jobs=threads, **dataclasses.asdict(params))
    if not np.array_equal(fitted, rows):  # pragma: no cover - one function chooses both
        raise RuntimeError("the UMAP's fitted cells differ from those chosen before")
    emb = np.full((adata.n_obs, 2), np.nan, dtype=np.float32)
    emb[rows] = later() if later else umap(pcs, **uncorrected)
    adata.obsm["X_umap_uncorrected"] = emb
    adata.uns = provenance.updated(
        adata.uns, provenance.entry("rna_cluster", params=params), out=out, inputs=[inp]
    )
    write_h5ad(adata, out)


def _annotation_input(clustered, normalized, integrated, genes: list[str] | None) -> ad.AnnData:
    """The cells as annotation reads them: the clustered file's obs and graph with only
    ``genes`` of the normalised cohort, or (``genes`` None: scANVI models the HVG counts)
    the integrated file with the clustered file's slots."""
    from ..io.h5ad import read_columns

    hv = ad.read_h5ad(clustered)
    if genes is None:
        sub = ad.read_h5ad(integrated)
        sub.obs = hv.obs.copy()
        sub.obsm.update(hv.obsm)
        sub.obsp.update(hv.obsp)
        sub.uns.update(hv.uns)
        return sub
    sub = ad.AnnData(
        X=read_columns(normalized, genes), obs=hv.obs.copy(), var=pd.DataFrame(index=genes)
    )
    sub.obsp["connectivities"] = hv.obsp["connectivities"]
    return sub


def rna_annotate(
    clustered: str | Path,
    normalized: str | Path,
    out: str | Path,
    *,
    integrated: str | Path,
    markers: str | Path,
    params: P.RnaAnnotate,
    reference: str | Path | None = None,
    celltypist_model: str | Path | None = None,
    accelerator: Accelerator = "cpu",
) -> pd.DataFrame:
    """Label cells and write the annotated cohort (the normalised file plus labels).

    ``clustered`` gives the clusters, graph and embeddings; marker-based and CellTypist
    annotation read only their genes from ``normalized``; scANVI the HVG counts of
    ``integrated``."""
    from ..io.h5ad import read_var
    from ..tl.annotation import (
        LABEL_COLUMNS,
        annotate_cells,
        annotation_genes,
        localize_markers,
        read_marker_table,
    )

    var_names = read_var(normalized).index
    table = localize_markers(
        read_marker_table(markers),
        var_names,
        species=params.species,
        min_found=params.min_markers_found,
    )
    genes = annotation_genes(
        params.method, markers=table, var_names=var_names, celltypist_model=celltypist_model
    )
    sub = _annotation_input(clustered, normalized, integrated, genes)
    norm = json.loads(provenance.read(normalized)["rna_normalize"]["params"])
    annotate_cells(
        sub,
        method=params.method,
        markers=table,
        min_score=params.min_score,
        min_expression=params.min_expression,
        split_fraction=params.split_fraction,
        seed=params.seed,
        max_epochs=params.max_epochs,
        reference=ad.read_h5ad(reference) if reference else None,
        reference_label_key=params.reference_label_key,
        celltypist_model=celltypist_model,
        target_sum=norm["target_sum"],
        accelerator=accelerator,
    )
    sub.uns["annotation"]["markers_used"] = table[
        ["cell_type", "positive", "negative"]
    ].reset_index(drop=True)
    labels = sub.obs[[c for c in (*LABEL_COLUMNS, "annotation_group") if c in sub.obs]]
    write_annotation(
        out,
        normalized=normalized,
        clustered=clustered,
        labels={c: labels[c].values for c in labels},
        annotation=sub.uns["annotation"],
        step="rna_annotate",
        params=params,
        inputs=[f for f in (markers, reference, celltypist_model) if f],
        obsm=dict(sub.obsm),
        uns=("integration", "leiden", "umap", "neighbors"),
    )
    return labels


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
    umap: str | Path,
    umap_uncorrected: str | Path,
    dotplot: str | Path,
    abundance: str | Path,
) -> None:
    """UMAP after integration (cell type, batch, sample) and before it (plain PCA on the HVGs:
    the batch effect integration removed), marker dot plot (the marker table as annotation
    used it, in the data's gene names), composition."""
    from ..io.h5ad import read_columns, read_obs, read_obsm, read_uns, read_var
    from ..pl import abundance_bars, marker_dotplot, umap_scatter
    from ..tl.abundance import composition
    from ..tl.annotation import split_markers

    keys = ("cell_type", "batch", "sample_id")
    obs = read_obs(annotated)
    for key, path in (("X_umap", umap), ("X_umap_uncorrected", umap_uncorrected)):
        save_figure(umap_scatter(read_obsm(annotated, key), obs, keys=keys), path)

    table = read_uns(annotated)["annotation"]["markers_used"]
    var = read_var(annotated).index
    marker_map = {
        t: [g for g in split_markers(p) if g in var][:4]
        for t, p in zip(table["cell_type"], table["positive"], strict=True)
    }
    genes = list(dict.fromkeys(g for v in marker_map.values() for g in v))
    sub = ad.AnnData(X=read_columns(annotated, genes), obs=obs, var=pd.DataFrame(index=genes))
    save_figure(marker_dotplot(sub, markers=marker_map), dotplot)
    save_figure(
        abundance_bars(composition(obs, modality="rna"), ylabel="fraction of cells"), abundance
    )
