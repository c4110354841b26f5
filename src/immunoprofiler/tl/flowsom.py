"""FlowSOM clustering (``flowsom`` package): fitted on a seeded subsample, applied to all.

The self-organising map and its consensus metaclustering are fitted on at most
``fit_events`` events drawn evenly from every file (seeded), then every event is
assigned to its nearest SOM node and that node's metacluster — so memory and time of
the fit do not grow with the cohort, and the assignment is one matrix product per block.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

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


def value_categories(n_values: int) -> tuple[list[str], np.ndarray]:
    """Categories for small integers ``0 <= v < n_values`` (SOM nodes, metaclusters) as
    ``pd.Categorical(values.astype(str))`` has them (sorted as strings), and the code of
    each value: a file's values become codes with ``rank[values]``, no string per row
    (:class:`~immunoprofiler.io.h5ad.ObsBlocks` then drops the values no row has).

    Examples
    --------
    >>> names, rank = value_categories(11)
    >>> names[:3], [names[c] for c in rank[np.array([2, 10, 2])]]
    (['0', '1', '10'], ['2', '10', '2'])
    """
    names = np.arange(n_values).astype(str)
    order = np.argsort(names)
    rank = np.empty(n_values, dtype=np.int16)
    rank[order] = np.arange(n_values)
    return names[order].tolist(), rank


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
