"""Per-file cytometry preprocessing: compensation and transformation.

Both work on ``layers`` of an AnnData from :func:`immunoprofiler.io.fcs.read_fcs`:
``raw`` → ``compensated`` → ``transformed``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from anndata import AnnData

logger = logging.getLogger(__name__)

Transform = Literal["arcsinh", "logicle"]
LOGICLE_DEFAULTS = {"t": 262144.0, "w": 0.5, "m": 4.5, "a": 0.0}


def read_spillover(path: str | Path) -> pd.DataFrame:
    """A user spillover matrix: CSV/TSV with detector names as header and as first column
    (FlowJo's export), or a square table with the header only (rows in header order)."""
    path = Path(path)
    sep = "\t" if path.suffix.lower() in (".tsv", ".txt") else ","
    df = pd.read_csv(path, sep=sep)
    if df.shape[1] == df.shape[0] + 1:
        df = df.set_index(df.columns[0])
    else:
        df.index = df.columns
    if df.shape[0] != df.shape[1]:
        raise ValueError(f"spillover matrix {path} is not square ({df.shape})")
    df.index = [str(i).strip() for i in df.index]
    df.columns = [str(c).strip() for c in df.columns]
    return df.astype(float)


def compensate(
    adata: AnnData, spillover: pd.DataFrame | None = None, *, estimated: bool = False
) -> str:
    """``layers["compensated"]`` = raw events with spillover removed.

    The matrix is the user's (``spillover``) or the file's (``uns["spillover"]``);
    it may cover only some detectors: those columns are solved (``raw[:, D] @ S⁻¹``)
    and every other channel is copied. Without a matrix (CyTOF, or flow files
    acquired without one) the layer equals ``raw``. An ``estimated`` matrix (the cohort's
    barcode spillover, :mod:`immunoprofiler.pp.spillover`) may name detectors another
    panel's file lacks: those are left out. Returns the source used (``"user"``,
    ``"estimated"``, ``"file"`` or ``"none"``).
    """
    raw = adata.layers["raw"]
    comp = np.array(raw, dtype=np.float32, copy=True)
    source = "none"
    if spillover is not None:
        source = "estimated" if estimated else "user"
        matrix = spillover
        if estimated:
            present = [d for d in matrix.index if d in adata.var_names]
            matrix = matrix.loc[present, present]
            if not len(present):  # no barcode spill estimated for this file's channels
                source = "none"
    elif "spillover" in adata.uns:
        source = "file"
        sp = adata.uns["spillover"]
        matrix = pd.DataFrame(
            np.asarray(sp["matrix"]), index=sp["detectors"], columns=sp["detectors"]
        )
    if source != "none":
        detectors = list(matrix.index)
        missing = sorted(set(detectors) - set(adata.var_names))
        if missing:
            raise ValueError(f"spillover matrix names detectors not in the file: {missing}")
        idx = adata.var_names.get_indexer(detectors)
        S = matrix.loc[detectors, detectors].to_numpy(dtype=np.float64)
        # observed = true @ S  →  true = observed @ S⁻¹ (solve, no explicit inverse)
        comp[:, idx] = np.linalg.solve(S.T, raw[:, idx].astype(np.float64).T).T
        adata.uns["spillover"] = {"detectors": detectors, "matrix": S, "source": source}
    adata.layers["compensated"] = comp
    logger.info("compensation: %s", source)
    return source


def _logicle(params: Mapping[str, float]):
    import flowkit as fk

    p = {**LOGICLE_DEFAULTS, **params}
    return fk.transforms.LogicleTransform(
        param_t=p["t"], param_w=p["w"], param_m=p["m"], param_a=p["a"]
    )


def transform_values(
    X: np.ndarray,
    *,
    method: Transform = "arcsinh",
    cofactors: np.ndarray | None = None,
    logicle: Mapping[str, float] | None = None,
) -> np.ndarray:
    """arcsinh(x / cofactor) per column, or FlowKit's logicle (Parks et al. 2006)."""
    X = np.asarray(X, dtype=np.float64)
    if method == "arcsinh":
        return np.arcsinh(X / np.asarray(cofactors, dtype=np.float64)).astype(np.float32)
    if method == "logicle":
        return _logicle(logicle or {}).apply(X).astype(np.float32)
    raise ValueError(f"unknown transform '{method}' (arcsinh, logicle)")


def inverse_transform_values(
    Y: np.ndarray,
    *,
    method: Transform = "arcsinh",
    cofactors: np.ndarray | None = None,
    logicle: Mapping[str, float] | None = None,
) -> np.ndarray:
    """The inverse of :func:`transform_values` (sinh(y) * cofactor, or inverse logicle)."""
    Y = np.asarray(Y, dtype=np.float64)
    if method == "arcsinh":
        return np.sinh(Y) * np.asarray(cofactors, dtype=np.float64)
    if method == "logicle":
        return _logicle(logicle or {}).inverse(Y)
    raise ValueError(f"unknown transform '{method}' (arcsinh, logicle)")


def transform(
    adata: AnnData,
    *,
    method: Transform = "arcsinh",
    logicle: Mapping[str, float] | None = None,
) -> None:
    """``layers["transformed"]`` from ``layers["compensated"]``.

    Marker channels (``var["marker_class"] != "none"``) and the cleaning channels
    (DNA, viability, beads, event length untouched) get the transform; cofactors come
    from ``var["cofactor"]`` (the panel). Scatter and time stay linear, so gates keep
    their usual units. ``logicle`` is for flow (FlowKit's implementation, per channel
    the same parameters).
    """
    comp = adata.layers["compensated"]
    role = adata.var["role"].to_numpy()
    cols = np.flatnonzero(~np.isin(role, ("scatter", "time", "event_length", "unused")))
    out = np.array(comp, dtype=np.float32, copy=True)
    cof = adata.var["cofactor"].to_numpy(dtype=np.float64)[cols]
    out[:, cols] = transform_values(comp[:, cols], method=method, cofactors=cof, logicle=logicle)
    adata.layers["transformed"] = out
    adata.var["transformed"] = False
    adata.var.iloc[cols, adata.var.columns.get_loc("transformed")] = True
    adata.uns["transform"] = {"method": method, "logicle": dict(logicle or {})}
