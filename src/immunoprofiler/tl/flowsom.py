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
