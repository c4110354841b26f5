"""Per-sample landmark registration of lineage (``type``) markers.

A type marker's intensity can move between samples for reasons that are not the cell's
identity: a stimulation or an activation that up- or down-regulates it, barcode reagents
spilling into its channel, staining of one sample a little brighter. Clusters and marker
gates then follow the condition, and a 30-minute stimulation shows up as a change of
composition. Landmark registration (Hahne et al. 2010, flowStats' ``gaussNorm`` /
``warpSet``) removes such shifts without touching proportions: per sample and marker the
density's peaks (the negative population and the brightest clear positive one) are found
and moved onto the cohort's peak positions by a monotone piecewise-linear map — the
height of each peak, i.e. how many cells it holds, is unchanged. Only type markers are
registered: the state markers' shifts are what the differential state test measures.

Fitted file by file from a seeded subsample of each (one sample per file), so a cohort of
any size is registered with a few numbers per file and marker.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .batchnorm import monotone_map

logger = logging.getLogger(__name__)

#: density peaks lower than this fraction of the highest one are not landmarks
MIN_HEIGHT = 0.02
#: a positive peak must lie at least this far (transformed units) above the negative one
MIN_SEPARATION = 1.0
#: a sample's peak further than this from the cohort's is not the same population
MAX_DISTANCE = 1.0
BIN = 0.02
BANDWIDTH = 0.15


def peaks(x: np.ndarray) -> tuple[float, float]:
    """The negative and the positive landmark of one marker's values ``x``.

    The density is a histogram (bins of :data:`BIN`) smoothed by a Gaussian kernel of
    :data:`BANDWIDTH`; its peaks are the local maxima at least :data:`MIN_HEIGHT` × the
    highest and standing out from the valleys beside them by as much. The negative
    landmark is the lowest peak, the positive one the highest-lying peak at least
    :data:`MIN_SEPARATION` above it (NaN when there is none: one population).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = np.concatenate([rng.normal(0.2, 0.3, 6000), rng.normal(3.5, 0.4, 2000)])
    >>> [round(v, 1) for v in peaks(x)]
    [0.2, 3.5]
    >>> neg, pos = peaks(rng.normal(0.0, 0.3, 5000))
    >>> round(neg, 1), bool(np.isnan(pos))
    (0.0, True)
    """
    from scipy.ndimage import gaussian_filter1d
    from scipy.signal import find_peaks

    x = np.asarray(x, dtype=np.float64)
    x = x[np.isfinite(x)]
    if len(x) < 50:
        return np.nan, np.nan
    lo, hi = np.quantile(x, [0.001, 0.999])
    edges = np.arange(lo - 4 * BANDWIDTH, hi + 4 * BANDWIDTH + BIN, BIN)
    density = gaussian_filter1d(np.histogram(x, edges)[0].astype(np.float64), BANDWIDTH / BIN)
    top = density.max()
    found, _ = find_peaks(density, height=MIN_HEIGHT * top, prominence=MIN_HEIGHT * top)
    if not len(found):
        return np.nan, np.nan
    at = (edges[found] + edges[found + 1]) / 2
    negative = float(at[0])
    above = at[at >= negative + MIN_SEPARATION]
    return negative, float(above[-1]) if len(above) else np.nan


@dataclass
class LandmarkRegistration:
    """Fitted landmarks: ``samples[sample]`` (markers × 2: negative, positive; NaN where
    a peak is missing or the marker is not registered) and the cohort's ``target``."""

    markers: list[str]
    samples: dict[str, np.ndarray]
    target: np.ndarray

    def apply(self, X: np.ndarray, sample: str) -> np.ndarray:
        """Register the events ``X`` (× ``markers``) of ``sample``: each marker's landmarks
        moved onto the target's (two: linear between them, shifted beyond; one: shifted)."""
        out = np.array(X, dtype=np.float32, copy=True)
        marks = self.samples.get(sample)
        if marks is None:
            raise KeyError(f"landmark registration: no landmarks fitted for sample '{sample}'")
        for j in range(len(self.markers)):
            have = np.isfinite(marks[j]) & np.isfinite(self.target[j])
            if not have.any():
                continue
            out[:, j] = monotone_map(out[:, j], marks[j][have], self.target[j][have])
        return out

    def shifts(self) -> dict[str, dict[str, list[float]]]:
        """Per sample and marker, how far each landmark was moved (for the log and tables)."""
        return {
            s: {
                m: [round(float(t - v), 4) for v, t in zip(marks[j], self.target[j], strict=True)]
                for j, m in enumerate(self.markers)
            }
            for s, marks in self.samples.items()
        }

    def to_dict(self) -> dict:
        return {
            "markers": self.markers,
            "samples": {s: m.tolist() for s, m in self.samples.items()},
            "target": self.target.tolist(),
        }

    @classmethod
    def from_dict(cls, d: Mapping) -> LandmarkRegistration:
        return cls(
            markers=list(d["markers"]),
            samples={s: np.asarray(m, dtype=np.float64) for s, m in d["samples"].items()},
            target=np.asarray(d["target"], dtype=np.float64),
        )


def fit_landmarks(
    samples: Iterable[tuple[str, np.ndarray]], *, markers: Sequence[str], register: np.ndarray
) -> LandmarkRegistration:
    """Fit the registration from ``(sample, events × markers)`` pairs (a subsample of each
    sample's events), registering the markers where ``register`` is true.

    The target of each landmark is the median over the samples that have it. A sample's
    peak further than :data:`MAX_DISTANCE` from that median is another population (a
    missing bright peak lets a dim one stand in); it is dropped and the median taken
    again, so such a sample is only shifted by its other landmark.

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> def sample(shift):
    ...     x = np.concatenate([rng.normal(0, .3, 4000), rng.normal(3 + shift, .4, 2000)])
    ...     return x[:, None]
    >>> reg = fit_landmarks([("a", sample(0)), ("b", sample(0.8))], markers=["CD4"],
    ...                     register=np.array([True]))
    >>> a, b = reg.apply(np.array([[3.0]]), "a"), reg.apply(np.array([[3.8]]), "b")
    >>> bool(abs(a - b)[0, 0] < 0.1)  # the same cells, wherever each sample had them
    True
    """
    register = np.asarray(register, dtype=bool)
    marks: dict[str, np.ndarray] = {}
    for sample, X in samples:
        X = np.asarray(X)
        m = np.full((len(markers), 2), np.nan)
        for j in np.flatnonzero(register):
            m[j] = peaks(X[:, j])
        marks[sample] = m
    if not marks:
        raise ValueError("landmark registration: no samples to fit on")
    names = list(marks)
    stack = np.stack([marks[s] for s in names])  # samples × markers × 2
    with warnings.catch_warnings():  # "All-NaN slice": a landmark no sample has
        warnings.simplefilter("ignore", RuntimeWarning)
        target = np.nanmedian(stack, axis=0)
        far = np.abs(stack - target[None]) > MAX_DISTANCE
        stack[far] = np.nan
        target = np.nanmedian(stack, axis=0)
    for i, s in enumerate(names):
        if dropped := [markers[j] for j in np.flatnonzero(far[i].any(axis=1))]:
            logger.info(
                "landmarks: sample %s, a peak of %s is not the cohort's; shifted only", s, dropped
            )
    return LandmarkRegistration(list(markers), dict(zip(names, stack, strict=True)), target)
