"""The cytometry chain (CyTOF and flow): one function per rule.

Per file: ``cyto_preprocess`` (ingest → compensate → transform → clean, one job).
Per modality (cohort): ``cyto_normalize`` (fitted on a subsample, applied file by file)
→ ``cyto_cluster`` (FlowSOM fitted on a subsample, every event assigned) →
``cyto_annotate`` → ``cyto_composition`` / ``cyto_plots``. Parameters come as the step's
dataclass from :mod:`immunoprofiler.params`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd

from .. import params as P
from .. import provenance
from ..accelerator import Accelerator
from ..failures import SampleError, excluded_table, per_sample, split_failed
from ..io.h5ad import write_h5ad
from .common import save_figure, write_annotation

logger = logging.getLogger(__name__)


def _add_entry(adata: ad.AnnData, step: str, **kwargs) -> None:
    adata.uns["provenance"] = provenance.merge(
        adata.uns.get("provenance"), provenance.entry(step, **kwargs)
    )


#: the layers later steps read from a preprocessed file (the raw and compensated values are
#: dropped once the gates are set: a third of the file's size)
KEPT_LAYERS = ("transformed",)


@per_sample("cyto_preprocess", inputs=("path",), outputs=("out", "panel_out", "table"))
def cyto_preprocess(
    path: str | Path,
    out: str | Path,
    *,
    panel_out: str | Path,
    table: str | Path,
    sample_id: str,
    modality: str,
    metadata: Mapping[str, str],
    params: P.CytoPreprocess,
    panel: str | Path | None = None,
    spillover: str | Path | None = None,
    spillover_estimated: bool = False,
    gating: str | Path | None = None,
) -> pd.DataFrame:
    """One FCS file to its gated events, in one job (one process start, one write):
    ingest (events with NaN/±inf an error or left out and counted; the panel given or
    derived; the sheet metadata) → compensate (the user's spillover matrix, the cohort's
    estimated barcode spillover (``spillover_estimated``, :func:`cyto_spillover`) or the
    file's) →
    transform (arcsinh with the panel's cofactors, or logicle) → clean (data-driven gates or
    a gating file's population: ``obs["gate_*"]``, ``obs["retained"]``).

    Writes the transformed values (:data:`KEPT_LAYERS`), the gates, the panel table and the
    gate counts; each stage keeps its provenance entry (``cyto_ingest:<sample>`` …). A
    failure names its stage (``Failure.step``).
    """
    stage = "cyto_ingest"
    try:
        adata = _ingest(path, panel_out, sample_id, modality, metadata, params.ingest, panel)
        stage = "cyto_compensate"
        _compensate(adata, path, sample_id, spillover, spillover_estimated)
        stage = "cyto_transform"
        _transform(adata, sample_id, params.transform)
        stage = "cyto_clean"
        counts = _clean(adata, path, sample_id, modality, params.clean, gating)
    except SampleError as err:
        err.step = err.step or stage
        raise
    counts.to_csv(table, sep="\t", index=False)
    adata.X = None
    for name in [k for k in adata.layers if k not in KEPT_LAYERS]:
        del adata.layers[name]
    write_h5ad(adata, out)
    return counts


def _ingest(path, panel_out, sample_id, modality, metadata, params, panel) -> ad.AnnData:
    from ..io.fcs import read_fcs
    from ..io.panel import derive_panel, parse_channel, read_panel
    from ..io.samples import add_metadata

    adata = read_fcs(path, sample_id=sample_id, non_finite=params.non_finite)
    channels, desc = list(adata.var["channel"]), list(adata.var["description"])
    if panel:
        table = read_panel(panel, channels, desc, modality=modality)
    else:
        table = derive_panel(channels, desc, modality=modality)
    table.to_csv(panel_out, sep="\t", index=False)
    table = table.set_index("channel").loc[channels]
    for col in ("marker", "marker_class", "cofactor", "role"):
        adata.var[col] = table[col].to_numpy()
    adata.var["metal"] = [parse_channel(c, d)[0] or "" for c, d in zip(channels, desc, strict=True)]
    add_metadata(adata, metadata)
    _add_entry(
        adata,
        f"cyto_ingest:{sample_id}",
        params={
            "modality": modality,
            "panel": str(panel or "derived"),
            "non_finite": params.non_finite,
            "non_finite_events_dropped": adata.uns["fcs"]["non_finite_dropped"],
        },
        inputs=[path, *([panel] if panel else [])],
    )
    return adata


def _compensate(adata: ad.AnnData, path, sample_id: str, spillover, estimated: bool) -> None:
    from ..pp.cytometry import compensate, read_spillover

    matrix = read_spillover(spillover) if spillover else None
    try:
        source = compensate(adata, matrix, estimated=estimated)
    except ValueError as err:
        raise SampleError(f"sample {sample_id} ({path}): {err}") from err
    _add_entry(
        adata,
        f"cyto_compensate:{sample_id}",
        params={"spillover": source},
        inputs=[spillover] if spillover else [],
    )


def cyto_spillover(
    fcs: Sequence[str | Path],
    out: str | Path,
    *,
    pairs: str | Path,
    panels: Sequence[str | Path | None],
    modality: str,
    params: P.CytoSpillover,
) -> pd.DataFrame:
    """The spillover of the barcode channels into the type markers, estimated from a
    seeded subsample of every file's raw events (:mod:`immunoprofiler.pp.spillover`);
    writes the matrix (``out``, for every file's compensation) and one row per
    barcode → marker pair considered (``pairs``; state markers' pairs are estimated and
    listed with ``applied`` false: a warning for their differential-state results). A file
    that cannot be read is left out here (its own preprocessing job fails with the reason)."""
    from ..io.fcs import read_fcs
    from ..io.panel import file_panel, parse_channel
    from ..pp.spillover import estimate_barcode_spillover

    rng = np.random.default_rng(params.seed)
    frames, metals, barcodes, targets, state, marker = [], {}, set(), set(), set(), {}
    for path, panel in zip(fcs, panels, strict=True):
        try:
            table = file_panel(path, panel or None, modality=modality).set_index("channel")
            adata = read_fcs(path, sample_id=Path(path).stem)
        except Exception as err:  # the sample's own job reports it
            logger.warning("spillover: %s left out (%s)", path, err)
            continue
        for ch, desc in zip(adata.var_names, adata.var["description"], strict=True):
            metals[ch] = parse_channel(ch, desc)[0]
        barcodes |= set(table.index[table["role"] == "barcode"])
        targets |= set(table.index[table["marker_class"] == "type"])
        state |= set(table.index[table["marker_class"] == "state"])
        marker.update(table["marker"].dropna().astype(str).to_dict())
        keep = np.sort(
            rng.choice(adata.n_obs, min(adata.n_obs, params.events_per_file), replace=False)
        )
        frames.append(pd.DataFrame(adata.layers["raw"][keep], columns=adata.var_names))
    events = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    logger.info(
        "spillover: %d events from %d files; barcode channels %s",
        len(events),
        len(frames),
        sorted(barcodes),
    )
    S, table = estimate_barcode_spillover(
        events, metals, sorted(barcodes), targets=sorted(targets | state)
    )
    # state markers: estimated and reported, not applied (a code that follows the condition
    # would take the stimulation's effect for spill)
    table.insert(2, "marker", table["target"].map(marker))
    table["applied"] = table["target"].isin(targets)
    for r in table.loc[~table["applied"]].itertuples():
        S.loc[r.source, r.target] = 0.0
    used = table.loc[(table["spill"] > 0) & table["applied"]]
    keep = sorted(set(used["source"]) | set(used["target"]))
    S.loc[keep, keep].to_csv(out, sep="\t", index_label="channel")
    table.to_csv(pairs, sep="\t", index=False)
    return table


def _transform(adata: ad.AnnData, sample_id: str, params: P.CytoTransform) -> None:
    from ..pp.cytometry import transform

    transform(adata, method=params.method, logicle=dataclasses.asdict(params.logicle))
    _add_entry(adata, f"cyto_transform:{sample_id}", params=params)


def _clean(adata, path, sample_id, modality, params: P.CytoClean, gating) -> pd.DataFrame:
    from ..pp.gating import clean

    try:
        counts = clean(
            adata,
            modality=modality,
            fcs_path=path,
            gating=gating,
            population=params.population,
            mad=params.mad,
            bead_min=params.bead_min,
        )
    except (ValueError, KeyError) as err:
        raise SampleError(f"sample {sample_id} ({path}): {err}") from err
    if counts["events"].iloc[-1] == 0:
        passed = ", ".join(f"{r.gate}: {r.events}" for r in counts.itertuples())
        raise SampleError(f"sample {sample_id} ({path}): no event passes the gates ({passed})")
    counts.insert(0, "modality", modality)
    counts.insert(0, "sample_id", sample_id)
    _add_entry(
        adata,
        f"cyto_clean:{sample_id}",
        params={"gating": str(gating or "auto"), **dataclasses.asdict(params)},
        inputs=[gating] if gating else [],
    )
    return counts


@dataclasses.dataclass(frozen=True)
class _File:
    """A preprocessed file of a panel group as ``cyto_normalize`` reads it."""

    path: str | Path
    n: int  # its retained events
    batch: str
    reference: bool
    channels: list[str]  # the group's shared markers, in this file's channel names
    sample: str

    def retained(self) -> np.ndarray:
        """The rows of its retained events, read again when needed (held for every file
        they would take 8 bytes an event: 0.7 GB at 100M)."""
        from ..io.h5ad import read_obs

        obs = read_obs(self.path, ["retained"], index=False)
        return np.flatnonzero(obs["retained"].to_numpy(dtype=bool))


@dataclasses.dataclass
class _Group:
    """A panel group's files, with the sheet metadata columns their obs carry (and the
    values each takes, for the cohort file's categories)."""

    files: list[_File]
    categories: dict[str, set[str]]
    has_event: bool  # obs["event"]: the event's number in its FCS file (io.fcs.read_fcs)


def _read_group(files, channels, reference_column: str) -> _Group:
    """Each file's obs (not its matrices): retained events, batch, reference, metadata."""
    from ..io.h5ad import read_obs
    from ..io.samples import is_reference

    group = _Group([], {}, True)
    meta_cols: list[str] = []
    for f, ch in zip(files, channels, strict=True):
        obs = read_obs(f, index=False)
        group.has_event &= "event" in obs
        meta_cols = meta_cols or [
            c for c in obs.columns if not c.startswith("gate_") and c not in ("retained", "event")
        ]
        for c in meta_cols:
            group.categories.setdefault(c, set()).update(obs[c].dropna().astype(str).unique())
        ref = obs[reference_column].iloc[0] if reference_column in obs else ""
        kept = int(obs["retained"].to_numpy(dtype=bool).sum())
        batch, sample = str(obs["batch"].iloc[0]), str(obs["sample_id"].iloc[0])
        group.files.append(_File(f, kept, batch, is_reference(ref), ch, sample))
    return group


def _fit_events(
    group: _Group, n: int, seed: int, registration=None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A seeded subsample of ``n`` retained events drawn evenly from the files
    (:func:`~immunoprofiler.tl.subsample.per_file_subsample`), each file's registered by
    ``registration`` when given: values, batch, reference."""
    from ..io.h5ad import read_columns
    from ..tl.subsample import per_file_subsample

    picks = per_file_subsample([f.n for f in group.files], n, seed)
    X, batch, ref = [], [], []
    for f, pick in zip(group.files, picks, strict=True):
        x = read_columns(f.path, f.channels, layer="transformed", rows=f.retained()[pick])
        X.append(x if registration is None else registration.apply(x, f.sample))
        batch.append(np.full(len(pick), f.batch, dtype=object))
        ref.append(np.full(len(pick), f.reference))
    return np.concatenate(X), np.concatenate(batch), np.concatenate(ref)


def _fit_registration(group: _Group, var: pd.DataFrame, n: int, seed: int):
    """Landmark registration of the type markers (:mod:`~immunoprofiler.pp.landmarks`),
    fitted on a seeded subsample of up to ``n`` retained events of each file."""
    from ..io.h5ad import read_columns
    from ..pp.landmarks import fit_landmarks

    rng = np.random.default_rng(seed)

    def samples():
        for f in group.files:
            rows = f.retained()
            rows = rows if len(rows) <= n else np.sort(rng.choice(rows, n, replace=False))
            yield f.sample, read_columns(f.path, f.channels, layer="transformed", rows=rows)

    return fit_landmarks(
        samples(), markers=list(var.index), register=var["marker_class"].to_numpy() == "type"
    )


def cyto_normalize(
    inputs: Sequence[str | Path],
    out: str | Path,
    *,
    table: str | Path,
    model_out: str | Path,
    params: P.CytoNormalize,
    group: str = "all",
    accelerator: Accelerator = "cpu",
) -> pd.DataFrame:
    """Batch-normalise the retained events of a panel group (``group``: its name, written to
    ``obs["panel_group"]``); report distances before/after.

    The group's files are analysed on the markers they all share (one panel: all of them;
    panels merged on purpose: the intersection, recorded in ``uns["panel"]``).
    Fitted on a seeded subsample drawn evenly from the files, applied one file at a time;
    with ``params.landmarks`` each file's type markers are first registered onto the
    cohort's density peaks (:mod:`~immunoprofiler.pp.landmarks`), and the batch
    normalisation is fitted and applied on the registered values. The output has ``X`` =
    normalised and ``layers["transformed"]`` = before, only marker channels (``var_names``
    = marker names), only retained events, sheet metadata in obs.
    """
    from ..io.h5ad import read_columns, read_obs, read_var, write_dense_h5ad
    from ..io.panel import shared_markers
    from ..pp import batchnorm

    files, excluded = split_failed(inputs)
    shared = shared_markers([read_var(f) for f in files], names=files)
    var = shared.var
    for f, left_out in shared.dropped.items():
        logger.warning("%s: markers not in every panel of the group left out: %s", f, left_out)
    cohort = _read_group(files, shared.channels, params.reference_column)
    method, note = batchnorm.applicable_method(params.method, [f.batch for f in cohort.files])
    if note:
        logger.warning("panel group %s: %s", group, note)
    registration = (
        _fit_registration(cohort, var, params.landmark_events, params.seed)
        if params.landmarks
        else None
    )
    Xf, bf, ref = _fit_events(cohort, params.fit_events, params.seed, registration)
    model = batchnorm.fit_normalizer(
        Xf,
        bf,
        method=method,
        markers=list(var.index),
        type_markers=var["marker_class"].to_numpy() == "type",
        references=ref,
        n_quantiles=params.n_quantiles,
        som_grid=params.som_grid,
        n_metaclusters=params.n_metaclusters,
        max_epochs=params.max_epochs,
        seed=params.seed,
        accelerator=accelerator,
        reference_column=params.reference_column,
    )
    dist = batchnorm.batch_distance_table(
        Xf, bf, model, markers=list(var.index), marker_class=list(var["marker_class"])
    )
    dist["method"], dist["note"] = method, note
    dist.to_csv(table, sep="\t", index=False)
    integers = {"event": np.int64} if cohort.has_event else {}

    def blocks():
        for f in cohort.files:
            rows = f.retained()
            X = read_columns(f.path, f.channels, layer="transformed", rows=rows)
            obs = read_obs(f.path, [*cohort.categories, *integers], rows=rows)
            obs["panel_group"] = group
            registered = X if registration is None else registration.apply(X, f.sample)
            yield model.apply(registered, f.batch), obs, X

    settings = {**dataclasses.asdict(params), "accelerator": accelerator, "group": group}
    settings.update({"note": note} if note else {})
    entry = provenance.entry("cyto_normalize", params=settings)
    uns = {
        **provenance.cohort_uns(provenance.merge(provenance.read(*files), entry), out=out),
        "batch_normalization": {"method": method, "note": note, "landmarks": params.landmarks},
        "panel": {
            "group": group,
            "merged": bool(shared.dropped),
            "markers": list(var.index),
            "left_out": shared.dropped,
        },
        "excluded_samples": excluded_table(excluded),
    }
    write_dense_h5ad(
        out,
        blocks(),
        n_obs=sum(f.n for f in cohort.files),
        var=var,
        categories={**{c: sorted(v) for c, v in cohort.categories.items()}, "panel_group": [group]},
        integers=integers,
        uns=uns,
        layers=("transformed",),
    )
    fitted = model.to_dict()
    if registration is not None:
        fitted["landmarks"] = registration.to_dict()
    Path(model_out).write_text(json.dumps(fitted))
    logger.info(
        "%s: between-batch EMD dropped for %.0f%% of markers",
        method,
        100 * batchnorm.emd_improved(dist),
    )
    return dist


def cyto_cluster(inp: str | Path, out: str | Path, *, params: P.CytoCluster) -> None:
    """FlowSOM on the type markers (fitted on a seeded subsample, then every file's events
    assigned, one file at a time), and UMAP of a seeded subsample after
    (``obsm["X_umap"]``) and before batch normalisation (``obsm["X_umap_uncorrected"]``:
    the same events; NaN outside the subsample). Writes obs, obsm and uns, no matrix."""
    from ..io.h5ad import ObsBlocks, derive_h5ad, obs_blocks, read_columns, read_uns, read_var
    from ..tl.embedding import umap
    from ..tl.flowsom import fit_som, som_grid, value_categories
    from ..tl.subsample import balanced_blocks

    var = read_var(inp)
    markers = list(var.index[var["marker_class"] == "type"])
    if not markers:
        raise ValueError(f"{inp}: the panel has no 'type' markers to cluster on")

    def read(rows, layer=None) -> np.ndarray:
        return np.asarray(read_columns(inp, markers, layer=layer, rows=rows), dtype=np.float32)

    files = obs_blocks(inp)  # one file's events each
    blocks = [rows for _, rows in files]
    n = blocks[-1].stop if blocks else 0
    xdim, ydim, note = som_grid(min(n, params.fit_events), params.xdim, params.ydim)
    if note:
        logger.warning("%s: %s", inp, note)
    fit_rows = balanced_blocks(files, params.fit_events, params.seed)
    som = fit_som(
        read(fit_rows),
        xdim=xdim,
        ydim=ydim,
        n_metaclusters=params.n_metaclusters,
        rlen=params.rlen,
        seed=params.seed,
    )
    rows = balanced_blocks(files, params.umap_events, params.seed + 1)
    node_names, node_code = value_categories(len(som.codes))
    meta_names, meta_code = value_categories(int(som.node_metacluster.max()) + 2)

    def labels():  # one file at a time: 2-byte codes and a flag per event, never all events'
        for block in blocks:
            nodes, meta = som.assign(read(block))
            in_umap = np.zeros(block.stop - block.start, dtype=bool)
            in_umap[rows[(rows >= block.start) & (rows < block.stop)] - block.start] = True
            codes = {"som_node": node_code[nodes], "metacluster": meta_code[meta + 1]}
            yield block, {**codes, "in_umap": in_umap}

    entry = provenance.entry(
        "cyto_cluster", params={**dataclasses.asdict(params), **({"note": note} if note else {})}
    )
    uns = {
        **provenance.updated(
            {"provenance": read_uns(inp).get("provenance")}, entry, out=out, inputs=[inp]
        ),
        "flowsom": {
            "markers": markers,
            "codes": som.codes,
            "node_metacluster": som.node_metacluster + 1,
            "fit_events": len(fit_rows),
            "grid": [xdim, ydim],
            "note": note,
        },
    }
    derive_h5ad(
        out,
        obs_from=inp,
        obs_blocks=ObsBlocks(
            {"som_node": node_names, "metacluster": meta_names, "in_umap": np.dtype(bool)},
            labels(),
        ),
        obsm={  # the same events before batch normalisation: what it removed
            "X_umap": (rows, umap(read(rows), seed=params.seed)),
            "X_umap_uncorrected": (rows, umap(read(rows, "transformed"), seed=params.seed)),
        },
        uns=uns,
    )


def cyto_annotate(
    clustered: str | Path,
    normalized: str | Path,
    out: str | Path,
    *,
    markers: str | Path,
    params: P.CytoAnnotate,
    lineages: str | Path | None = None,
) -> pd.DataFrame:
    """Metaclusters → cell types by the protein marker table (gate rule, SOM nodes of mixed
    metaclusters labelled apart), with the lineage table's coarser labels for lineages the
    panel cannot resolve; writes the annotated cohort (the normalised file plus labels,
    clusters and UMAP). Fitted and applied file by file (:class:`MarkerAnnotation`).

    Returns the annotation's group table.
    """
    from ..io.h5ad import ObsBlocks, obs_blocks, read_columns, read_obs, read_var
    from ..tl import annotation as ann

    table = ann.read_marker_table(markers)
    fallback = ann.read_lineage_table(lineages) if lineages else None
    var = read_var(normalized)
    resolved = ann.resolve_panel_markers(
        table, list(var.index[var["marker_class"] == "type"]), fallback
    )
    genes = ann.marker_genes(resolved)
    files = obs_blocks(clustered)

    def blocks():
        for _, rows in files:
            obs = read_obs(clustered, ["metacluster", "som_node"], rows=rows, index=False)
            X = np.asarray(read_columns(normalized, genes, rows=rows), dtype=np.float32)
            yield X, obs["metacluster"].to_numpy(str), obs["som_node"].to_numpy(str)

    fit = ann.fit_marker_annotation(
        blocks,
        genes=pd.Index(genes),
        markers=resolved,
        cluster_key="metacluster",
        min_score=params.min_score,
        min_expression=params.min_expression,
        split_fraction=params.split_fraction,
        rule="gate",
        split=True,
    )
    rows = [r for _, r in files]
    labels = ObsBlocks(fit.categories(), fit.label_stream(blocks(), rows))
    fit.uns["markers_used"] = resolved[["cell_type", "positive", "negative"]].reset_index(drop=True)
    write_annotation(
        out,
        normalized=normalized,
        clustered=clustered,
        labels=labels,
        annotation=fit.uns,
        step="cyto_annotate",
        params=params,
        inputs=[markers, *([lineages] if lineages else [])],
        uns=("flowsom",),
    )
    return fit.uns["groups"]


def cyto_composition(
    annotated: str | Path, out: str | Path, *, medians: str | Path, modality: str
) -> pd.DataFrame:
    """Composition table and per-sample × cell type marker medians of one modality, one
    file (sample) at a time: each file's rows are one sample's, so its table is exact."""
    from ..io.h5ad import obs_blocks, read_columns, read_obs, read_var
    from ..tl.abundance import composition
    from ..tl.pseudobulk import marker_medians

    var = read_var(annotated)
    comps, meds = [], []
    for _, rows in obs_blocks(annotated):
        obs = read_obs(annotated, _COMPOSITION_COLUMNS, rows=rows, index=False)
        comps.append(composition(obs, modality=modality))
        X = np.asarray(read_columns(annotated, list(var.index), rows=rows))
        meds.append(marker_medians(X, obs, var, modality=modality))
    df = _concat_sorted(comps, ["sample_id", "n_cells"], ascending=[True, False])
    df.to_csv(out, sep="\t", index=False)
    _concat_sorted(meds, ["sample_id", "cell_type", "marker"]).to_csv(
        medians, sep="\t", index=False
    )
    return df


#: the obs columns a composition table is made of
_COMPOSITION_COLUMNS = ["sample_id", "cell_type", "cell_ontology_id", "lineage", "panel_group"]


def _concat_sorted(tables: list[pd.DataFrame], by: list[str], **kwargs) -> pd.DataFrame:
    """Per-file tables as one, sorted as one table of all files would be."""
    return pd.concat(tables, ignore_index=True).sort_values(by, ignore_index=True, **kwargs)


def cyto_plots(
    annotated: str | Path,
    *,
    heatmap: str | Path,
    umap: str | Path,
    umap_uncorrected: str | Path,
    abundance: str | Path,
) -> None:
    """UMAP after batch normalisation (cell type, batch) and before it (the same events),
    metacluster heatmap (medians of the UMAP's subsample; sizes and labels of all events),
    per-sample composition — read file by file and on the subsample, never every event."""
    from ..io.h5ad import obs_blocks, read_columns, read_obs, read_obsm, read_var
    from ..pl import abundance_bars, metacluster_heatmap, umap_scatter
    from ..tl.abundance import composition

    var = read_var(annotated)
    markers = list(var.index[var["marker_class"] == "type"])
    rows = np.flatnonzero(read_obs(annotated, ["in_umap"], index=False)["in_umap"].to_numpy())
    obs = read_obs(annotated, ["cell_type", "batch", "metacluster"], rows=rows, index=False)
    keys = ("cell_type", "batch")
    for key, path in (("X_umap", umap), ("X_umap_uncorrected", umap_uncorrected)):
        save_figure(umap_scatter(read_obsm(annotated, key, rows=rows), obs, keys=keys), path)
    comps, counts = [], []
    for _, block in obs_blocks(annotated):
        part = read_obs(annotated, [*_COMPOSITION_COLUMNS, "metacluster"], rows=block, index=False)
        comps.append(composition(part, modality=""))
        counts.append(part.groupby(["metacluster", "cell_type"], observed=True).size())
    sizes = pd.concat(counts).groupby(level=[0, 1], observed=True).sum()
    X = np.asarray(read_columns(annotated, markers, rows=rows))
    save_figure(metacluster_heatmap(X, obs, markers, counts=sizes), heatmap)
    save_figure(abundance_bars(pd.concat(comps, ignore_index=True)), abundance)
