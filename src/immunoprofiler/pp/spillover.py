"""Mass-cytometry spillover from barcode channels, estimated from the data.

Barcoded CyTOF runs stain every cell of a sample with a few bright metals (a palladium or
lanthanide code); the other samples of the run carry other codes. Mass cytometry spills a
small fraction of every metal into the channels one mass unit away (abundance
sensitivity), sixteen above (oxides) and into the other isotopes of the same element
(isotopic impurity) — the interactions CATALYST models (Chevrier et al. 2018). A marker
next to a barcode metal then reads a sample-specific background on every cell: in the
Bodenmiller PBMC8 files the Reference samples' Nd146 code (~2,500 counts) lifts CD4 (Nd145)
and CD20 (Sm147) of negative cells to arcsinh 1–3, and the BCR-XL samples' Lu175 code lifts
CD7 (Yb176) and HLA-DR (Yb174), so cell types differ between conditions for no biological
reason.

Because a barcode is on in some samples and off in others, and samples of one study hold
the same kinds of cells, its spill can be read off the data: for each barcode channel and
each channel it can spill into, the spill coefficient is the one that makes the target's
negative cells (its lower quantiles) in the samples carrying the code match those in the
samples without it. Markers never spill-source here: their intensity follows biology, so
the same comparison would take a population's real co-expression for spill.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

_METAL = re.compile(r"^([A-Z][a-z]?)(\d{2,3})$")
ON, OFF = 100.0, 10.0  # raw counts: a barcode carried (on) or not (off) by an event
MIN_EVENTS = 500  # events each side of a barcode for an estimate
MIN_POSITIVE = 1.0  # arcsinh level below which an event is negative for the target
MIN_NEGATIVE = 0.1  # fewest negative events (fraction) a target needs for an estimate
MAX_SPILL = 0.1


def _mass(metal: str | None) -> tuple[str, int] | None:
    m = _METAL.match(metal or "")
    return (m.group(1), int(m.group(2))) if m else None


def spill_pairs(metals: Mapping[str, str | None], sources: Sequence[str]) -> list[tuple[str, str]]:
    """(source, target) channel pairs a source metal can spill into: masses ±1, +16 (oxide)
    and the same element's other isotopes (CATALYST's interactions). Channels whose metal
    is unknown or a summed range (``Cd110:114``) take no part.

    Examples
    --------
    >>> spill_pairs({"BC3": "Nd146", "CD4": "Nd145", "CD20": "Sm147", "X": "Dy162",
    ...              "CD14": "Gd160"}, ["BC3"])
    [('BC3', 'CD4'), ('BC3', 'CD20'), ('BC3', 'X')]
    """
    masses = {ch: _mass(m) for ch, m in metals.items()}
    pairs = []
    for s in sources:
        if masses.get(s) is None:
            continue
        el, ms = masses[s]
        for t, mt in masses.items():
            if t == s or mt is None:
                continue
            if abs(mt[1] - ms) == 1 or mt[1] == ms + 16 or mt[0] == el:
                pairs.append((s, t))
    return pairs


def _spill(x: np.ndarray, y: np.ndarray, cofactor: float) -> tuple[float, str]:
    """One pair's coefficient from the raw values of the source (``x``) and target (``y``)
    over events from many samples, and what it rests on.

    Without the code, a fraction ``p`` of the events is negative for the target (arcsinh
    below :data:`MIN_POSITIVE`); the middle of those negatives is the ``p / 2`` quantile.
    The coefficient is the one that brings the same quantile of the events carrying the code,
    less their spill ``s · x``, back to it (bisection: the quantile falls as ``s`` rises)."""
    on, off = x >= ON, x <= OFF
    if on.sum() < MIN_EVENTS or off.sum() < MIN_EVENTS:
        return 0.0, f"code on in {on.sum()} and off in {off.sum()} events (< {MIN_EVENTS})"
    negative = float(np.mean(np.arcsinh(y[off] / cofactor) < MIN_POSITIVE))
    if negative < MIN_NEGATIVE:
        return 0.0, f"{negative:.0%} of the events without the code are negative for it"
    q = np.array([0.8, 1.0, 1.2]) * negative / 2
    base = np.quantile(y[off], q)
    xo, yo = x[on], y[on]

    def excess(s: float) -> float:  # > 0 while the code's events still sit above
        return float(np.mean(np.quantile(yo - s * xo, q) - base))

    if excess(0.0) <= 0:
        return 0.0, "no excess"
    lo, hi = 0.0, MAX_SPILL
    if excess(hi) > 0:
        return MAX_SPILL, f"capped at {MAX_SPILL}"
    for _ in range(40):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if excess(mid) > 0 else (lo, mid)
    return (lo + hi) / 2, (
        f"{on.sum()} events with the code, {off.sum()} without ({negative:.0%} negative)"
    )


def estimate_barcode_spillover(
    events: pd.DataFrame,
    metals: Mapping[str, str | None],
    barcodes: Sequence[str],
    *,
    targets: Sequence[str] | None = None,
    cofactor: float = 5.0,
    min_spill: float = 1e-4,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Spillover of the ``barcodes`` channels into the others (``targets``: those only),
    from raw events pooled over samples (``events``: events × channels, linear scale, NaN
    where a sample's panel lacks the channel; ``metals``: channel → metal).

    Returns the spillover matrix (channels × channels, identity but for the estimated
    coefficients, ``observed = true @ S``: rows spill into columns), for
    :func:`immunoprofiler.pp.cytometry.compensate`, and one row per pair considered
    (``source, target, spill, evidence``).
    """
    channels = [c for c in events.columns if c in metals]
    S = pd.DataFrame(np.eye(len(channels)), index=channels, columns=channels)
    rows = []
    for s, t in spill_pairs({c: metals[c] for c in channels}, barcodes):
        if targets is not None and t not in targets:
            continue
        x = events[s].to_numpy(np.float64)
        y = events[t].to_numpy(np.float64)
        ok = np.isfinite(x) & np.isfinite(y)
        coef, why = _spill(x[ok], y[ok], cofactor)
        if coef < min_spill:
            coef = 0.0
        S.loc[s, t] = coef
        rows.append({"source": s, "target": t, "spill": coef, "evidence": why})
        if coef:
            logger.info("spillover %s → %s: %.4f (%s)", s, t, coef, why)
    return S, pd.DataFrame(rows, columns=["source", "target", "spill", "evidence"])
