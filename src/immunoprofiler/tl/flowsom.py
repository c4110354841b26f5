"""FlowSOM clustering (``flowsom`` package): fitted on a seeded subsample, applied to all.

The self-organising map and its consensus metaclustering are fitted on at most
``fit_events`` events drawn evenly from every file (seeded), then every event is
assigned to its nearest SOM node and that node's metacluster — so memory and time of
the fit do not grow with the cohort, and the assignment is one matrix product per block.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..failures import SampleError
from ..pp.batchnorm import nearest

logger = logging.getLogger(__name__)


@dataclass
class SOM:
    codes: np.ndarray  # nodes × markers
    node_metacluster: np.ndarray  # metacluster of each node

    def assign(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(node, metacluster) of each event."""
        nodes = nearest(X, self.codes)
        return nodes, self.node_metacluster[nodes]

    def assign_blocks(
        self, blocks: Iterable[np.ndarray], rows: Sequence[slice], n: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """(node, metacluster) of ``n`` events given as blocks (block ``i`` holds the events
        ``rows[i]``: one file's at a time), as 2-byte codes (≤ 32,767 nodes)."""
        nodes = np.empty(n, dtype=np.int16)
        meta = np.empty(n, dtype=np.int16)
        for X, r in zip(blocks, rows, strict=True):
            nodes[r], meta[r] = self.assign(X)
        return nodes, meta


#: fewest events per SOM node a panel group's SOM is fitted with (smaller groups: smaller grid)
EVENTS_PER_NODE = 10


def som_grid(n_events: int, xdim: int, ydim: int) -> tuple[int, int, str]:
    """The SOM grid for ``n_events``: the configured one, or a smaller square one (at least
    2×2) when there are fewer than :data:`EVENTS_PER_NODE` events per node, with a note.

    Examples
    --------
    >>> som_grid(100_000, 10, 10)
    (10, 10, '')
    >>> som_grid(170, 10, 10)[:2]
    (4, 4)
    """
    if n_events >= EVENTS_PER_NODE * xdim * ydim:
        return xdim, ydim, ""
    side = max(2, int(np.sqrt(n_events / EVENTS_PER_NODE)))
    if n_events < side * side:
        raise SampleError(f"{n_events} events are too few to cluster (a 2×2 SOM needs 4)")
    note = (
        f"SOM grid {xdim}×{ydim} reduced to {side}×{side}: the panel group has {n_events} "
        f"events (< {EVENTS_PER_NODE} per node)"
    )
    return side, side, note


def code_labels(values: np.ndarray, n_values: int, chunk: int = 1 << 20) -> pd.Categorical:
    """``pd.Categorical(values.astype(str))`` of small integers ``0 <= values < n_values``
    (SOM nodes, metaclusters) without a string per row, a sort of the rows or an all-rows
    index copy: categories are the values present, sorted as strings; codes mapped a chunk
    at a time.

    Examples
    --------
    >>> list(code_labels(np.array([2, 10, 2]), 11))
    ['2', '10', '2']
    >>> list(code_labels(np.array([2, 10, 2]), 11).categories)
    ['10', '2']
    """
    seen = np.zeros(n_values, dtype=bool)
    for a in range(0, len(values), chunk):
        seen[np.unique(values[a : a + chunk])] = True
    present = np.flatnonzero(seen)
    names = present.astype(str)
    order = np.argsort(names)
    rank = np.full(n_values, -1, dtype=np.int16)
    rank[present[order]] = np.arange(len(present))
    codes = np.empty(len(values), dtype=np.int16)
    for a in range(0, len(values), chunk):
        codes[a : a + chunk] = rank[values[a : a + chunk]]
    return pd.Categorical.from_codes(codes, categories=pd.Index(names[order]))


def fit_som(
    X: np.ndarray,
    *,
    xdim: int = 10,
    ydim: int = 10,
    n_metaclusters: int = 20,
    rlen: int = 10,
    seed: int = 0,
) -> SOM:
    """Fit FlowSOM (SOM + consensus hierarchical metaclustering) on ``X``."""
    from flowsom.models import FlowSOMEstimator

    n_nodes = xdim * ydim
    if len(X) < n_nodes:
        raise ValueError(f"{len(X)} events are too few for a {xdim}×{ydim} SOM")
    est = FlowSOMEstimator(
        xdim=xdim, ydim=ydim, rlen=rlen, n_clusters=min(n_metaclusters, n_nodes), seed=seed
    )
    est.fit(np.asarray(X, dtype=np.float64))
    codes = np.asarray(est.cluster_model.codes, dtype=np.float64)
    node_meta = np.asarray(est._y_codes, dtype=np.int64)  # metacluster of each SOM node
    logger.info(
        "FlowSOM %dx%d on %d events → %d metaclusters", xdim, ydim, len(X), len(set(node_meta))
    )
    return SOM(codes=codes, node_metacluster=node_meta)


def flowsom(
    X: np.ndarray,
    groups: np.ndarray,
    *,
    xdim: int,
    ydim: int,
    n_metaclusters: int,
    rlen: int,
    fit_events: int,
    seed: int,
) -> tuple[SOM, np.ndarray]:
    """FlowSOM fitted on at most ``fit_events`` rows of ``X`` drawn evenly from ``groups``
    (files); returns the model (assign every event with :meth:`SOM.assign`) and the rows
    it was fitted on."""
    from .subsample import balanced_subsample

    fit_idx = balanced_subsample(groups, fit_events, seed)
    som = fit_som(
        X[fit_idx], xdim=xdim, ydim=ydim, n_metaclusters=n_metaclusters, rlen=rlen, seed=seed
    )
    return som, fit_idx
