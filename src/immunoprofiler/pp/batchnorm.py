"""Batch normalisation of cytometry markers, and how far apart batches are.

Quantile normalisation (CytoNorm's idea, Van Gassen et al. 2020): per batch and
marker, the quantiles of the batch are mapped onto the mean quantiles of all batches
by a monotone piecewise-linear function (linear beyond the fitted range). The
functions are fitted on a seeded subsample and applied to every file, so a cohort of
any size is normalised one file at a time.

* ``quantile`` (default): fitted on all samples of each batch — no reference needed;
  assumes batches hold comparable samples.
* ``cytonorm``: fitted on the reference samples the sheet marks (the same control
  measured in every batch), per FlowSOM metacluster of the reference events, as in
  CytoNorm; events are normalised by the function of their nearest metacluster.

Distances: per marker and batch, the earth mover's (Wasserstein-1) distance between
the batch's events and the events of all other batches, before and after.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

Method = Literal["quantile", "cytonorm", "cytovi", "none"]


class Normalizer(Protocol):
    """A fitted batch normalisation: applied one file (one batch) at a time."""

    def apply(self, X: np.ndarray, batch: str) -> np.ndarray: ...

    def to_dict(self) -> dict: ...


@dataclass
class Identity:
    """``method: none``: values unchanged."""

    def apply(self, X: np.ndarray, batch: str) -> np.ndarray:
        return X

    def to_dict(self) -> dict:
        return {"method": "none"}


@dataclass
class QuantileModel:
    """Fitted quantile maps: ``quantiles[batch][cluster]`` (n_quantiles × markers) and the
    ``target[cluster]`` they are mapped onto; ``codes`` (clusters × markers) assign events
    to clusters (one cluster when ``codes`` is None)."""

    markers: list[str]
    probs: np.ndarray
    quantiles: dict[str, list[np.ndarray]]
    target: list[np.ndarray]
    codes: np.ndarray | None = None
    code_cluster: np.ndarray | None = None
    cluster_markers: list[int] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "markers": self.markers,
            "probs": self.probs.tolist(),
            "quantiles": {b: [q.tolist() for q in qs] for b, qs in self.quantiles.items()},
            "target": [t.tolist() for t in self.target],
            "codes": None if self.codes is None else self.codes.tolist(),
            "code_cluster": None if self.code_cluster is None else self.code_cluster.tolist(),
            "cluster_markers": [int(i) for i in self.cluster_markers],
        }

    @classmethod
    def from_dict(cls, d: Mapping) -> QuantileModel:
        return cls(
            markers=list(d["markers"]),
            probs=np.asarray(d["probs"]),
            quantiles={b: [np.asarray(q) for q in qs] for b, qs in d["quantiles"].items()},
            target=[np.asarray(t) for t in d["target"]],
            codes=None if d["codes"] is None else np.asarray(d["codes"]),
            code_cluster=None if d["code_cluster"] is None else np.asarray(d["code_cluster"]),
            cluster_markers=list(d["cluster_markers"]),
        )

    def apply(self, X: np.ndarray, batch: str) -> np.ndarray:
        """Normalise the events ``X`` of one ``batch`` (see :func:`apply_quantiles`)."""
        return apply_quantiles(self, X, batch)

    def clusters(self, X: np.ndarray) -> np.ndarray:
        if self.codes is None:
            return np.zeros(len(X), dtype=np.int64)
        nodes = nearest(X[:, self.cluster_markers], self.codes)
        return nodes if self.code_cluster is None else self.code_cluster[nodes]


def nearest(X: np.ndarray, codes: np.ndarray, chunk: int = 200_000) -> np.ndarray:
    """Index of the nearest row of ``codes`` for every row of ``X`` (Euclidean, chunked)."""
    out = np.empty(len(X), dtype=np.int64)
    c2 = (codes.astype(np.float64) ** 2).sum(axis=1)
    for s in range(0, len(X), chunk):
        x = X[s : s + chunk].astype(np.float64)
        out[s : s + chunk] = np.argmin(c2[None, :] - 2.0 * x @ codes.T, axis=1)
    return out


def _increasing(q: np.ndarray) -> np.ndarray:
    """Strictly increasing copy of quantiles (ties, e.g. many zeros, broken by a hair)."""
    eps = 1e-6 * np.arange(len(q))
    return np.maximum.accumulate(q + eps)


def fit_quantiles(
    X: np.ndarray,
    batches: np.ndarray,
    *,
    markers: Sequence[str],
    n_quantiles: int = 101,
    clusters: np.ndarray | None = None,
    codes: np.ndarray | None = None,
    code_cluster: np.ndarray | None = None,
    cluster_markers: Sequence[int] = (),
    n_clusters: int = 1,
    min_cluster_events: int = 50,
) -> QuantileModel:
    """Fit per-batch (and per-cluster) quantile maps to the mean quantiles over batches.

    A cluster with fewer than ``min_cluster_events`` events in some batch falls back to the
    identity for that batch. ``clusters`` (0..n_clusters-1) are the fitted events'
    clusters; ``codes`` / ``code_cluster`` / ``cluster_markers`` assign new events to them.
    """
    probs = np.linspace(0, 1, n_quantiles)
    names = sorted(pd.unique(batches).astype(str))
    if len(names) < 2:
        logger.warning("only one batch (%s): batch normalisation is the identity", names)
    clusters = np.zeros(len(X), dtype=np.int64) if clusters is None else clusters
    quantiles: dict[str, list[np.ndarray]] = {b: [] for b in names}
    target: list[np.ndarray] = []
    for c in range(n_clusters):
        per = {}
        for b in names:
            sel = (batches == b) & (clusters == c)
            if sel.sum() >= min_cluster_events:
                per[b] = np.quantile(X[sel], probs, axis=0)
        mean = np.mean(list(per.values()), axis=0) if per else None
        target.append(mean if mean is not None else np.tile(probs[:, None], (1, X.shape[1])))
        for b in names:
            quantiles[b].append(per.get(b, target[-1]) if mean is not None else target[-1])
            if b not in per:
                logger.warning(
                    "batch %s has < %d events in cluster %d: not normalised there",
                    b,
                    min_cluster_events,
                    c,
                )
    return QuantileModel(
        markers=list(markers),
        probs=probs,
        quantiles=quantiles,
        target=target,
        codes=codes,
        code_cluster=code_cluster,
        cluster_markers=list(cluster_markers),
    )


def apply_quantiles(model: QuantileModel, X: np.ndarray, batch: str) -> np.ndarray:
    """Normalise the events ``X`` (columns = ``model.markers``) of one ``batch``."""
    if batch not in model.quantiles:
        raise KeyError(
            f"batch '{batch}' was not seen when the normalisation was fitted "
            f"(fitted: {sorted(model.quantiles)})"
        )
    out = np.array(X, dtype=np.float32, copy=True)
    clusters = model.clusters(X)
    for c in np.unique(clusters):
        rows = clusters == c
        src, dst = model.quantiles[batch][c], model.target[c]
        for j in range(X.shape[1]):
            out[rows, j] = monotone_map(X[rows, j], _increasing(src[:, j]), dst[:, j])
    return out


def monotone_map(x: np.ndarray, xp: np.ndarray, fp: np.ndarray) -> np.ndarray:
    """The piecewise-linear map through the points ``(xp, fp)`` (``xp`` increasing),
    continued beyond them by shifts (slope 1), so no value is clipped.

    Examples
    --------
    >>> monotone_map(np.array([-1.0, 0.5, 3.0]), np.array([0.0, 1.0]), np.array([0.0, 2.0]))
    array([-1.,  1.,  4.])
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.interp(x, xp, fp)
    y = np.where(x < xp[0], x + (fp[0] - xp[0]), y)
    return np.where(x > xp[-1], x + (fp[-1] - xp[-1]), y)


def batch_distances(
    X: np.ndarray, batches: np.ndarray, *, markers: Sequence[str], max_events: int = 20_000
) -> pd.DataFrame:
    """Earth mover's distance per marker and batch: the batch vs all other batches."""
    from scipy.stats import wasserstein_distance

    rows = []
    names = sorted(pd.unique(batches).astype(str))
    rng = np.random.default_rng(0)
    for b in names:
        inb = np.flatnonzero(batches == b)
        out = np.flatnonzero(batches != b)
        if len(out) == 0:
            continue
        inb = rng.choice(inb, min(len(inb), max_events), replace=False)
        out = rng.choice(out, min(len(out), max_events), replace=False)
        for j, m in enumerate(markers):
            rows.append(
                {"marker": m, "batch": b, "emd": float(wasserstein_distance(X[inb, j], X[out, j]))}
            )
    return pd.DataFrame(rows, columns=["marker", "batch", "emd"])


@dataclass
class CytoVIModel:
    """scvi-tools' CytoVI trained on a subsample: markers are min–max scaled with the
    subsample's 0.5/99.5 percentiles (``low``/``high``), decoded with the batch effect
    averaged out (``transform_batch="all"``) and mapped back to the arcsinh scale."""

    model: object
    markers: list[str]
    low: np.ndarray
    high: np.ndarray
    batches: list[str]

    def _scaled(self, X: np.ndarray) -> np.ndarray:
        return np.clip((X - self.low) / (self.high - self.low), 0.0, 1.0).astype(np.float32)

    def apply(self, X: np.ndarray, batch: str) -> np.ndarray:
        import anndata as ad

        if batch not in self.batches:
            raise KeyError(f"batch '{batch}' was not seen when CytoVI was trained ({self.batches})")
        q = ad.AnnData(
            X=None,
            obs=pd.DataFrame({"batch": pd.Categorical([batch] * len(X), categories=self.batches)}),
            var=pd.DataFrame(index=self.markers),
            layers={"scaled": self._scaled(X)},
        )
        out = np.asarray(
            self.model.get_normalized_expression(adata=q, transform_batch="all", return_numpy=True)
        )
        return (out * (self.high - self.low) + self.low).astype(np.float32)

    def to_dict(self) -> dict:
        return {
            "method": "cytovi",
            "markers": self.markers,
            "low": self.low.tolist(),
            "high": self.high.tolist(),
            "batches": self.batches,
        }


def fit_cytovi(
    X: np.ndarray,
    batches: np.ndarray,
    *,
    markers: Sequence[str],
    max_epochs: int = 50,
    seed: int = 0,
    accelerator: str = "cpu",
) -> CytoVIModel:
    """Train CytoVI (scvi-tools) on the events ``X`` with ``batches`` as batch key."""
    import anndata as ad
    import scvi
    from scvi.external import CYTOVI

    scvi.settings.seed = seed
    low, high = np.percentile(X, [0.5, 99.5], axis=0)
    high = np.where(high - low < 1e-3, low + 1.0, high)
    names = sorted(pd.unique(batches).astype(str))
    cm = CytoVIModel(model=None, markers=list(markers), low=low, high=high, batches=names)
    a = ad.AnnData(
        X=None,
        obs=pd.DataFrame({"batch": pd.Categorical(batches.astype(str), categories=names)}),
        var=pd.DataFrame(index=list(markers)),
        layers={"scaled": cm._scaled(X)},
    )
    CYTOVI.setup_anndata(a, layer="scaled", batch_key="batch")
    model = CYTOVI(a)
    model.train(
        max_epochs=max_epochs, accelerator=accelerator, devices=1, enable_progress_bar=False
    )
    cm.model = model
    return cm


def fit_normalizer(
    X: np.ndarray,
    batches: np.ndarray,
    *,
    method: Method,
    markers: Sequence[str],
    type_markers: np.ndarray,
    references: np.ndarray,
    n_quantiles: int,
    som_grid: int,
    n_metaclusters: int,
    max_epochs: int,
    seed: int,
    accelerator: str = "cpu",
    reference_column: str = "reference",
) -> Normalizer:
    """Fit the batch normalisation ``method`` on the events ``X`` (a seeded subsample).

    Parameters
    ----------
    X, batches
        Events × ``markers`` (transformed values) and each event's batch.
    type_markers
        Boolean mask of the lineage (``type``) markers: ``cytonorm`` clusters on them.
    references
        Boolean mask of the events from reference samples (``cytonorm`` fits on them only;
        every batch needs some).
    reference_column
        The sheet column that marks references, named in errors.

    Examples
    --------
    >>> model = fit_normalizer(X, b, method="quantile", markers=m, ...)  # doctest: +SKIP
    >>> model.apply(X_file, "batch1")  # doctest: +SKIP
    """
    if method == "none":
        return Identity()
    if method == "quantile":
        return fit_quantiles(X, batches, markers=markers, n_quantiles=n_quantiles)
    if method == "cytonorm":
        from ..tl.flowsom import fit_som

        if not references.any():
            raise ValueError(
                f"cyto.normalize.method 'cytonorm' needs reference samples: mark them in the "
                f"sample sheet column '{reference_column}' (e.g. 'ref' / 'true')"
            )
        missing = sorted(set(batches) - set(batches[references]))
        if missing:
            raise ValueError(
                f"cytonorm: batch(es) {missing} have no reference sample in '{reference_column}'"
            )
        type_idx = np.flatnonzero(type_markers)
        ref = X[references]
        som = fit_som(
            ref[:, type_idx], xdim=som_grid, ydim=som_grid, n_metaclusters=n_metaclusters, seed=seed
        )
        return fit_quantiles(
            ref,
            batches[references],
            markers=markers,
            n_quantiles=n_quantiles,
            clusters=som.node_metacluster[som.assign(ref[:, type_idx])[0]],
            codes=som.codes,
            code_cluster=som.node_metacluster,
            cluster_markers=list(type_idx),
            n_clusters=int(som.node_metacluster.max()) + 1,
        )
    if method == "cytovi":
        return fit_cytovi(
            X, batches, markers=markers, max_epochs=max_epochs, seed=seed, accelerator=accelerator
        )
    raise ValueError(f"unknown cyto.normalize.method '{method}' (quantile, cytonorm, cytovi, none)")


def batch_distance_table(
    X: np.ndarray,
    batches: np.ndarray,
    model: Normalizer,
    *,
    markers: Sequence[str],
    marker_class: Sequence[str],
) -> pd.DataFrame:
    """Per marker and batch, the earth mover's distance to the other batches before and after
    ``model`` (``marker, marker_class, batch, emd_before, emd_after``)."""
    names = pd.unique(batches)
    order = np.concatenate([np.flatnonzero(batches == b) for b in names])
    after = np.concatenate([model.apply(X[batches == b], b) for b in names])
    before = batch_distances(X[order], batches[order], markers=markers)
    dist = before.rename(columns={"emd": "emd_before"})
    dist["emd_after"] = batch_distances(after, batches[order], markers=markers)["emd"].to_numpy()
    cls = dict(zip(markers, marker_class, strict=True))
    dist.insert(1, "marker_class", [cls[m] for m in dist["marker"]])
    return dist


def applicable_method(method: Method, batches: Sequence[str]) -> tuple[Method, str]:
    """The normalisation a panel group gets, and why when it is not ``method``: a group
    whose files are one batch has nothing to normalise between (and CytoVI would train for
    nothing), so it gets ``none`` with a note for the log, the provenance and the batch table.

    Examples
    --------
    >>> applicable_method("quantile", ["b1", "b2", "b1"])
    ('quantile', '')
    >>> applicable_method("cytovi", ["b1", "b1"])
    ('none', "cytovi not applied: the group's files are one batch")
    """
    if method != "none" and len(set(batches)) < 2:
        return "none", f"{method} not applied: the group's files are one batch"
    return method, ""


def emd_improved(dist: pd.DataFrame) -> float:
    """The fraction of markers whose mean earth mover's distance between batches dropped
    (a :func:`batch_distance_table`).

    Examples
    --------
    >>> t = pd.DataFrame({"marker": ["CD3", "CD3", "CD4"], "emd_before": [2.0, 1.0, 1.0],
    ...                   "emd_after": [0.5, 0.5, 1.5]})
    >>> emd_improved(t)
    0.5
    """
    mean = dist.groupby("marker")[["emd_before", "emd_after"]].mean()
    return float((mean["emd_after"] < mean["emd_before"]).mean())
