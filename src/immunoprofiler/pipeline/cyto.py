"""The cytometry chain (CyTOF and flow): one function per rule.

Per file: ``cyto_ingest`` → ``cyto_compensate`` → ``cyto_transform`` → ``cyto_clean``.
Per modality (cohort): ``cyto_normalize`` (fitted on a subsample, applied file by file)
→ ``cyto_cluster`` (FlowSOM fitted on a subsample, every event assigned) →
``cyto_annotate`` → ``cyto_composition`` / ``cyto_plots``.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import anndata as ad
import h5py
import numpy as np
import pandas as pd

from .. import provenance
from ..accelerator import Accelerator
from .common import save_figure

logger = logging.getLogger(__name__)

MARKER_CLASSES = ("type", "state")
TRUTHY = {"1", "true", "yes", "y", "ref", "reference", "t"}


def _categorical_obs(adata: ad.AnnData, metadata: Mapping[str, str]) -> None:
    for key, value in metadata.items():
        adata.obs[key] = pd.Categorical([value] * adata.n_obs)


def cyto_ingest(
    path: str | Path,
    out: str | Path,
    *,
    panel_out: str | Path,
    sample_id: str,
    modality: str,
    metadata: Mapping[str, str],
    panel: str | Path | None = None,
) -> ad.AnnData:
    """Read one FCS file, attach its panel (given or derived) and the sheet metadata."""
    from ..io.fcs import read_fcs
    from ..io.panel import derive_panel, parse_channel, read_panel

    adata = read_fcs(path, sample_id=sample_id)
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
    _categorical_obs(adata, {k: v for k, v in metadata.items() if k != "panel"})
    provenance.record(
        adata,
        f"cyto_ingest:{sample_id}",
        params={"modality": modality, "panel": str(panel or "derived")},
        inputs=[path, *([panel] if panel else [])],
    )
    adata.write_h5ad(out)
    return adata


def cyto_compensate(
    inp: str | Path, out: str | Path, *, sample_id: str, spillover: str | Path | None = None
) -> str:
    """``layers["compensated"]`` from the user's spillover matrix or the file's."""
    from ..pp.cytometry import compensate, read_spillover

    adata = ad.read_h5ad(inp)
    matrix = read_spillover(spillover) if spillover else None
    try:
        source = compensate(adata, matrix)
    except ValueError as err:
        raise ValueError(f"sample {sample_id} ({inp}): {err}") from err
    provenance.record(
        adata,
        f"cyto_compensate:{sample_id}",
        params={"spillover": source},
        inputs=[spillover] if spillover else [],
    )
    adata.write_h5ad(out)
    return source


def cyto_transform(
    inp: str | Path,
    out: str | Path,
    *,
    sample_id: str,
    method: str = "arcsinh",
    logicle: Mapping[str, float] | None = None,
) -> None:
    """``layers["transformed"]`` (arcsinh with the panel's cofactors, or logicle)."""
    from ..pp.cytometry import transform

    adata = ad.read_h5ad(inp)
    transform(adata, method=method, logicle=logicle)
    provenance.record(
        adata, f"cyto_transform:{sample_id}", params={"method": method, "logicle": logicle}
    )
    adata.write_h5ad(out)


def cyto_clean(
    inp: str | Path,
    out: str | Path,
    *,
    table: str | Path,
    sample_id: str,
    modality: str,
    fcs_path: str | Path | None = None,
    gating: str | Path | None = None,
    population: str | None = None,
    params: Mapping[str, float] | None = None,
) -> pd.DataFrame:
    """Gate one file; write it with ``obs["gate_*"]`` / ``obs["retained"]`` and its counts."""
    from ..pp.gating import clean

    adata = ad.read_h5ad(inp)
    try:
        counts = clean(
            adata,
            modality=modality,
            fcs_path=fcs_path,
            gating=gating,
            population=population,
            params=params,
        )
    except (ValueError, KeyError) as err:
        raise ValueError(f"sample {sample_id} ({fcs_path or inp}): {err}") from err
    if counts["events"].iloc[-1] == 0:
        raise ValueError(
            f"sample {sample_id}: no event passes the gates ({counts.to_dict('records')})"
        )
    counts.insert(0, "modality", modality)
    counts.insert(0, "sample_id", sample_id)
    counts.to_csv(table, sep="\t", index=False)
    provenance.record(
        adata,
        f"cyto_clean:{sample_id}",
        params={"gating": str(gating or "auto"), "population": population, **dict(params or {})},
        inputs=[gating] if gating else [],
    )
    adata.write_h5ad(out)
    return counts


def _read_dense(path: str | Path, key: str, cols: np.ndarray, rows: np.ndarray) -> np.ndarray:
    with h5py.File(path, "r") as f:
        return np.asarray(f[key][:, :])[np.ix_(rows, cols)].astype(np.float32)


def _marker_var(files: Sequence[str | Path]) -> pd.DataFrame:
    """Marker channels (type/state) shared by every file of a modality, indexed by marker."""
    from ..io.h5ad import read_var

    first = read_var(files[0])
    var = first[first["marker_class"].isin(MARKER_CLASSES)]
    for f in files[1:]:
        other = read_var(f)
        other = other[other["marker_class"].isin(MARKER_CLASSES)]
        if list(other["marker"]) != list(var["marker"]) or list(other.index) != list(var.index):
            raise ValueError(
                f"{f}: its panel markers {list(other['marker'])} differ from those of "
                f"{files[0]} ({list(var['marker'])}); files normalised together need one panel"
            )
    out = pd.DataFrame(
        {"channel": var.index, "marker_class": var["marker_class"].to_numpy()},
        index=pd.Index(var["marker"].astype(str), name=None),
    )
    return out


def cyto_normalize(
    inputs: Sequence[str | Path],
    out: str | Path,
    *,
    table: str | Path,
    model_out: str | Path,
    method: str = "quantile",
    params: Mapping[str, Any],
    reference_column: str = "reference",
    seed: int = 0,
    accelerator: Accelerator = "cpu",
) -> pd.DataFrame:
    """Batch-normalise the retained events of a modality; report distances before/after.

    The output has ``X`` = normalised and ``layers["transformed"]`` = before, only marker
    channels (``var_names`` = marker names), only retained events, sheet metadata in obs.
    """
    from ..io.h5ad import read_obs, read_uns, read_var, write_dense_h5ad
    from ..pp.batchnorm import apply_quantiles, batch_distances, fit_cytovi, fit_quantiles
    from ..tl.flowsom import fit_som

    files = [str(f) for f in inputs]
    var = _marker_var(files)
    cols = read_var(files[0]).index.get_indexer(var["channel"])
    fit_events = int(params.get("fit_events", 200_000))
    per_file = max(fit_events // len(files), 1)
    rng = np.random.default_rng(seed)
    metas, fit_X, fit_b, fit_ref = [], [], [], []
    meta_cols: list[str] | None = None
    for f in files:
        obs = read_obs(f)
        keep = np.flatnonzero(obs["retained"].to_numpy(dtype=bool))
        meta_cols = meta_cols or [
            c for c in obs.columns if not c.startswith("gate_") and c != "retained"
        ]
        X = _read_dense(f, "layers/transformed", cols, keep)
        pick = np.sort(rng.choice(len(keep), min(per_file, len(keep)), replace=False))
        batch = str(obs["batch"].iloc[0])
        is_ref = (
            str(obs[reference_column].iloc[0]).strip().lower() in TRUTHY
            if reference_column in obs
            else False
        )
        fit_X.append(X[pick])
        fit_b.append(np.full(len(pick), batch, dtype=object))
        fit_ref.append(np.full(len(pick), is_ref))
        metas.append((f, keep, batch))
    Xf, bf, rf = np.concatenate(fit_X), np.concatenate(fit_b), np.concatenate(fit_ref)
    markers = list(var.index)
    type_idx = np.flatnonzero(var["marker_class"].to_numpy() == "type")
    if method == "none":
        model = None
    elif method == "quantile":
        model = fit_quantiles(
            Xf, bf, markers=markers, n_quantiles=int(params.get("n_quantiles", 101))
        )
    elif method == "cytonorm":
        if not rf.any():
            raise ValueError(
                f"cyto.normalize.method 'cytonorm' needs reference samples: mark them in the "
                f"sample sheet column '{reference_column}' (e.g. 'ref' / 'true')"
            )
        missing = sorted(set(bf) - set(bf[rf]))
        if missing:
            raise ValueError(
                f"cytonorm: batch(es) {missing} have no reference sample in '{reference_column}'"
            )
        grid = int(params.get("som_grid", 5))
        som = fit_som(
            Xf[rf][:, type_idx],
            xdim=grid,
            ydim=grid,
            n_metaclusters=int(params.get("n_metaclusters", 5)),
            seed=seed,
        )
        clusters = som.node_metacluster[som.assign(Xf[rf][:, type_idx])[0]]
        model = fit_quantiles(
            Xf[rf],
            bf[rf],
            markers=markers,
            n_quantiles=int(params.get("n_quantiles", 101)),
            clusters=clusters,
            codes=som.codes,
            code_cluster=som.node_metacluster,
            cluster_markers=list(type_idx),
            n_clusters=int(som.node_metacluster.max()) + 1,
        )
    elif method == "cytovi":
        model = fit_cytovi(
            Xf,
            bf,
            markers=markers,
            max_epochs=int(params.get("max_epochs", 50)),
            seed=seed,
            accelerator=accelerator,
        )
    else:
        raise ValueError(
            f"unknown cyto.normalize.method '{method}' (quantile, cytonorm, cytovi, none)"
        )

    def normalise(X: np.ndarray, batch: str) -> np.ndarray:
        if model is None:
            return X
        if method == "cytovi":
            return model.apply(X, batch)
        return apply_quantiles(model, X, batch)

    after = np.concatenate([normalise(Xf[bf == b], b) for b in pd.unique(bf)])
    order = np.concatenate([np.flatnonzero(bf == b) for b in pd.unique(bf)])
    before = Xf[order]
    dist_b = batch_distances(before, bf[order], markers=markers)
    dist_a = batch_distances(after, bf[order], markers=markers)
    dist = dist_b.rename(columns={"emd": "emd_before"})
    dist["emd_after"] = dist_a["emd"].to_numpy()
    dist.insert(1, "marker_class", var.loc[dist["marker"], "marker_class"].to_numpy())
    dist["method"] = method
    dist.to_csv(table, sep="\t", index=False)

    def blocks():
        for f, keep, batch in metas:
            X = _read_dense(f, "layers/transformed", cols, keep)
            obs = read_obs(f).iloc[keep][meta_cols]
            yield normalise(X, batch), obs, X

    tmp = ad.AnnData(
        uns={"provenance": provenance.merge([read_uns(f).get("provenance", {}) for f in files])}
    )
    provenance.record(
        tmp,
        "cyto_normalize",
        params={"method": method, **dict(params), "seed": seed, "accelerator": accelerator},
    )
    uns = {"provenance": tmp.uns["provenance"], "batch_normalization": {"method": method}}
    n_obs = sum(len(k) for _, k, _ in metas)
    write_dense_h5ad(out, blocks(), n_obs=n_obs, var=var, uns=uns, layers=("transformed",))
    Path(model_out).write_text(json.dumps(model.to_dict() if model else {"method": "none"}))
    improved = (
        dist.groupby("marker")[["emd_before", "emd_after"]].mean().diff(axis=1)["emd_after"] < 0
    ).mean()
    logger.info("%s: between-batch EMD dropped for %.0f%% of markers", method, 100 * improved)
    return dist


def cyto_cluster(
    inp: str | Path, out: str | Path, *, params: Mapping[str, Any], seed: int = 0
) -> None:
    """FlowSOM on the type markers (fitted on a seeded subsample), UMAP on a subsample."""
    from ..io.h5ad import read_columns, read_obs, read_uns, read_var
    from ..tl.flowsom import balanced_subsample, fit_som

    var = read_var(inp)
    markers = list(var.index[var["marker_class"] == "type"])
    if not markers:
        raise ValueError(f"{inp}: the panel has no 'type' markers to cluster on")
    X = np.asarray(read_columns(inp, markers), dtype=np.float32)
    obs = read_obs(inp)
    samples = obs["sample_id"].astype(str).to_numpy()
    fit_idx = balanced_subsample(samples, int(params.get("fit_events", 200_000)), seed)
    som = fit_som(
        X[fit_idx],
        xdim=int(params.get("xdim", 10)),
        ydim=int(params.get("ydim", 10)),
        n_metaclusters=int(params.get("n_metaclusters", 20)),
        rlen=int(params.get("rlen", 10)),
        seed=seed,
    )
    nodes, meta = som.assign(X)
    obs = obs.copy()
    obs["som_node"] = pd.Categorical(nodes.astype(str))
    obs["metacluster"] = pd.Categorical((meta + 1).astype(str))
    umap_idx = balanced_subsample(samples, int(params.get("umap_events", 20_000)), seed + 1)
    emb = _umap(X, umap_idx, seed)
    obs["in_umap"] = np.isin(np.arange(len(X)), umap_idx)
    uns = {
        "provenance": read_uns(inp).get("provenance", {}),
        "flowsom": {
            "markers": markers,
            "codes": som.codes,
            "node_metacluster": som.node_metacluster + 1,
            "fit_events": len(fit_idx),
        },
    }
    adata = ad.AnnData(obs=obs, obsm={"X_umap": emb}, uns=uns)
    provenance.record(adata, "cyto_cluster", params={**dict(params), "seed": seed})
    adata.write_h5ad(out)


def cyto_annotate(
    clustered: str | Path,
    normalized: str | Path,
    out: str | Path,
    *,
    markers: str | Path,
    params: Mapping[str, Any],
) -> pd.DataFrame:
    """Metaclusters → cell types by the protein marker table (gate rule); writes the
    annotated cohort (the normalised file plus labels, clusters and UMAP)."""
    from ..io.h5ad import read_columns, read_uns, read_var, update_h5ad
    from ..tl import annotation as ann

    table = ann.read_marker_table(markers)
    var = read_var(normalized)
    resolved = ann.resolve_panel_markers(table, list(var.index[var["marker_class"] == "type"]))
    genes = ann.marker_genes(resolved)
    cl = ad.read_h5ad(clustered)
    sub = ad.AnnData(
        X=np.asarray(read_columns(normalized, genes), dtype=np.float64),
        obs=cl.obs[["metacluster", "som_node"]].copy(),
        var=pd.DataFrame(index=genes),
    )
    ann.annotate(
        sub,
        markers=resolved,
        cluster_key="metacluster",
        subcluster_key="som_node",
        rule="gate",
        **params,
    )
    obs = cl.obs.copy()
    for col in (*ann.LABEL_COLUMNS, "annotation_group"):
        obs[col] = sub.obs[col].to_numpy()
    uns = read_uns(normalized)
    tmp = ad.AnnData(
        uns={
            "provenance": provenance.merge(
                [uns.get("provenance", {}), cl.uns.get("provenance", {})]
            )
        }
    )
    provenance.record(tmp, "cyto_annotate", params=dict(params), inputs=[markers])
    uns["provenance"] = tmp.uns["provenance"]
    uns["annotation"] = sub.uns["annotation"]
    uns["annotation"]["markers_used"] = resolved[["cell_type", "positive", "negative"]].reset_index(
        drop=True
    )
    uns["flowsom"] = cl.uns["flowsom"]
    tmp_out = Path(f"{out}.partial")
    shutil.copyfile(normalized, tmp_out)
    try:
        update_h5ad(tmp_out, obs=obs, obsm={"X_umap": cl.obsm["X_umap"]}, uns=uns)
        tmp_out.replace(out)
    finally:
        tmp_out.unlink(missing_ok=True)
    return obs


def marker_medians(
    X: np.ndarray, obs: pd.DataFrame, var: pd.DataFrame, *, modality: str
) -> pd.DataFrame:
    """Median of every marker per sample and cell type (long format)."""
    df = pd.DataFrame(X, columns=list(var.index))
    df["sample_id"] = obs["sample_id"].astype(str).to_numpy()
    df["cell_type"] = obs["cell_type"].astype(str).to_numpy()
    med = df.groupby(["sample_id", "cell_type"], observed=True).median()
    long = med.reset_index().melt(
        id_vars=["sample_id", "cell_type"], var_name="marker", value_name="median"
    )
    long.insert(1, "modality", modality)
    long.insert(4, "marker_class", var.loc[long["marker"], "marker_class"].to_numpy())
    long["median"] = long["median"].astype(float).round(5)
    return long.sort_values(["sample_id", "cell_type", "marker"], ignore_index=True)


def cyto_composition(
    annotated: str | Path, out: str | Path, *, medians: str | Path, modality: str
) -> pd.DataFrame:
    """Composition table and per-sample × cell type marker medians of one modality."""
    from ..io.h5ad import read_columns, read_obs, read_var
    from ..tl.abundance import composition

    obs = read_obs(annotated)
    df = composition(obs, modality=modality)
    df.to_csv(out, sep="\t", index=False)
    var = read_var(annotated)
    X = np.asarray(read_columns(annotated, list(var.index)))
    marker_medians(X, obs, var, modality=modality).to_csv(medians, sep="\t", index=False)
    return df


def _umap(X: np.ndarray, rows: np.ndarray, seed: int) -> np.ndarray:
    """UMAP of ``X[rows]`` (seeded); ``NaN`` for the other rows."""
    emb = np.full((len(X), 2), np.nan, dtype=np.float32)
    if len(rows) > 15:
        import umap

        emb[rows] = umap.UMAP(
            n_neighbors=15, min_dist=0.3, random_state=seed, n_jobs=1
        ).fit_transform(X[rows])
    return emb


def cyto_plots(
    annotated: str | Path,
    *,
    heatmap: str | Path,
    umap: str | Path,
    abundance: str | Path,
    umap_unnormalized: str | Path | None = None,
    seed: int = 0,
) -> None:
    """Metacluster heatmap, UMAP by cell type and batch, per-sample abundance bars; with
    ``umap_unnormalized`` also the UMAP of the same events before batch normalisation."""
    from ..io.h5ad import read_columns, read_obs, read_obsm, read_var
    from ..pl.cytometry import abundance_bars, metacluster_heatmap, umap_scatter
    from ..tl.abundance import composition

    obs, var = read_obs(annotated), read_var(annotated)
    markers = list(var.index[var["marker_class"] == "type"])
    X = np.asarray(read_columns(annotated, markers))
    save_figure(metacluster_heatmap(X, obs, markers), heatmap)
    keys = ("cell_type", "batch")
    save_figure(umap_scatter(read_obsm(annotated, "X_umap"), obs, keys=keys), umap)
    save_figure(abundance_bars(composition(obs, modality="")), abundance)
    if umap_unnormalized is not None:
        rows = np.flatnonzero(obs["in_umap"].to_numpy(bool))
        before = read_columns(annotated, markers, layer="transformed", rows=rows)
        emb = np.full((len(obs), 2), np.nan, dtype=np.float32)
        emb[rows] = _umap(np.asarray(before), np.arange(len(rows)), seed)
        save_figure(umap_scatter(emb, obs, keys=keys), umap_unnormalized)
