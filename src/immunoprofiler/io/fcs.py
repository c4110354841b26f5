"""FCS 2.0 / 3.0 / 3.1 files → AnnData, read with FlowKit (on FlowIO).

FlowKit parses the TEXT segment (latin-1 safe), both byte orders, integer and
float data, and applies ``$PnE`` (log-amplified integer channels) and ``$PnG``
(gain) so that values are on a linear scale. Real files whose data offset is off by
one byte are read (``ignore_offset_error``) with a warning in the log.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..failures import SampleError
from ..params import NonFinite

if TYPE_CHECKING:  # anndata only where events are read: the Snakefile reads headers
    import anndata as ad

logger = logging.getLogger(__name__)

SPILL_KEYS = ("spill", "spillover", "$spill", "$spillover")


class FCSError(SampleError):
    """An FCS file cannot be read or is internally inconsistent."""


def _sample(path: Path):
    import flowkit as fk

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sample = fk.Sample(str(path), ignore_offset_error=True, subsample=0)
    for w in caught:
        if "offset" in str(w.message):
            logger.warning("%s: %s", path, w.message)
    return sample


def read_header_channels(path: str | Path) -> tuple[list[str], list[str]]:
    """``$PnN`` and ``$PnS`` of an FCS file from its TEXT segment only (no event data read):
    what the sheet validation needs to check a panel before any job runs."""
    import flowio

    try:
        fd = flowio.FlowData(str(path), only_text=True, ignore_offset_error=True)
    except Exception as err:  # FlowIO raises several types for damaged headers
        raise FCSError(
            f"{path}: the FCS header cannot be read ({type(err).__name__}: {err})"
        ) from err
    chans = [fd.channels[k] for k in sorted(fd.channels, key=int)]
    return [str(c.get("pnn", "")).strip() for c in chans], [
        str(c.get("pns", "") or "").strip() for c in chans
    ]


def spillover_from_keywords(keywords: dict[str, str]) -> pd.DataFrame | None:
    """The spillover matrix of ``$SPILL`` / ``$SPILLOVER`` (rows = detectors spilling from)."""
    text = next((keywords[k] for k in SPILL_KEYS if keywords.get(k, "").strip()), None)
    if text is None:
        return None
    parts = [p.strip() for p in text.split(",")]
    try:
        n = int(parts[0])
        names = parts[1 : n + 1]
        values = np.array([float(v) for v in parts[n + 1 : n + 1 + n * n]])
    except (ValueError, IndexError) as err:
        raise FCSError(f"spillover keyword cannot be parsed ({err})") from err
    if n == 0:
        return None
    if values.size != n * n:
        raise FCSError(f"spillover keyword declares {n} detectors but has {values.size} values")
    return pd.DataFrame(values.reshape(n, n), index=names, columns=names)


#: a channel whose values lie this many times beyond its $PnR (log-amplified channels reach
#: 10 × $PnR in real files) or below 1e-20 in magnitude is not measured data
BEYOND_RANGE = 1000.0
#: the share of such values in one channel that marks a misread data segment
GARBAGE_FRACTION = 0.01


def _number(value: str | None) -> float:
    try:
        return float(value) if value not in (None, "") else float("nan")
    except ValueError:
        return float("nan")


def check_values(
    events: np.ndarray,
    channels: list[str],
    ranges: list[float],
    *,
    path: str | Path,
    non_finite: NonFinite = "error",
) -> np.ndarray:
    """Refuse data that cannot be measurements: a channel where more than
    :data:`GARBAGE_FRACTION` of the events lie :data:`BEYOND_RANGE` times beyond the
    channel's ``$PnR`` or are tiny non-zero numbers (< 1e-20) — what a data segment read from
    a misaligned offset decodes to —, or (``non_finite="error"``) are non-finite, or any
    non-finite value (NaN, ±inf) at all. With ``non_finite="drop"`` the events holding a
    non-finite value are left out instead (the caller records how many).

    Returns
    -------
    The events to keep (boolean mask).

    Raises
    ------
    FCSError
        Naming the file, the channels and how many values.
    """
    finite = np.isfinite(events)
    limit = BEYOND_RANGE * np.maximum(np.nan_to_num(np.asarray(ranges), nan=1.0), 1.0)
    with np.errstate(invalid="ignore"):
        absx = np.abs(events)
        absurd = (absx > limit) | ((absx < 1e-20) & (events != 0))
        if non_finite == "error":
            absurd |= ~finite
        absurd = absurd.mean(axis=0)
    if (absurd > GARBAGE_FRACTION).any():
        worst = {
            c: f"{f:.0%}"
            for c, f in sorted(zip(channels, absurd, strict=True), key=lambda t: -t[1])
            if f > GARBAGE_FRACTION
        }
        raise FCSError(
            f"{path}: values implausible for the channels' ranges ($PnR) — share of events "
            f"non-finite, beyond {BEYOND_RANGE:g}x the range or below 1e-20: {worst}; the data "
            "segment is misread (misaligned DATA offset or wrong $DATATYPE/$BYTEORD?)"
        )
    keep = finite.all(axis=1)
    if not keep.all():
        bad = (~finite).sum(axis=0)
        where = {c: int(n) for c, n in zip(channels, bad, strict=True) if n}
        if non_finite == "error":
            raise FCSError(
                f"{path}: {int(bad.sum())} non-finite values (NaN or ±inf) in the data, per "
                f"channel {where}: the file is damaged or was exported with invalid values "
                "(config cyto.ingest.non_finite: drop leaves those events out instead)"
            )
        if not keep.any():
            raise FCSError(f"{path}: every event holds a non-finite value (NaN or ±inf)")
        logger.warning(
            "%s: %d of %d events dropped for non-finite values, per channel %s",
            path,
            int((~keep).sum()),
            keep.size,
            where,
        )
    return keep


def read_fcs(path: str | Path, *, sample_id: str, non_finite: NonFinite = "error") -> ad.AnnData:
    """Read one FCS file; events with a non-finite value are an error or, with
    ``non_finite="drop"``, left out (counted in ``uns["fcs"]["non_finite_dropped"]``).

    Returns
    -------
    AnnData with ``X = None`` and the events in ``layers["raw"]`` (float32, linear
    scale); ``var`` indexed by ``$PnN`` with ``description`` ($PnS) and ``range`` ($PnR);
    ``uns["fcs"]`` the keywords and version, ``uns["spillover"]`` the file's spillover
    matrix (if any); ``obs_names`` ``<sample_id>_<event>``, ``obs["event"]`` the event's
    number in the file (from 0; events dropped as non-finite leave gaps).

    Raises
    ------
    FCSError
        Naming the file: not FCS, truncated, or an event count that does not match the
        data segment.
    """
    import anndata as ad

    path = Path(path)
    if not path.is_file():
        raise FCSError(f"{path}: FCS file does not exist")
    with open(path, "rb") as fh:
        head = fh.read(6)
    if not head.startswith(b"FCS"):
        raise FCSError(f"{path}: not an FCS file (starts with {head!r}, expected 'FCS2.0/3.x')")
    try:
        sample = _sample(path)
        events = sample.get_events(source="raw")
    except Exception as err:  # FlowIO/FlowKit raise several types for damaged files
        raise FCSError(f"{path}: cannot be read as FCS ({type(err).__name__}: {err})") from err
    keywords = {str(k): str(v) for k, v in sample.metadata.items()}
    declared = int(keywords.get("tot", events.shape[0]) or events.shape[0])
    if events.shape[0] != declared:
        raise FCSError(
            f"{path}: $TOT says {declared} events but the data segment holds {events.shape[0]} "
            "(truncated file?)"
        )
    if events.shape[0] == 0:
        raise FCSError(f"{path}: the file holds no events ($TOT 0)")
    channels = [str(c).strip() for c in sample.pnn_labels]
    if len(set(channels)) != len(channels):
        raise FCSError(f"{path}: channel names ($PnN) are not unique: {channels}")
    desc = [str(d or "").strip() for d in sample.pns_labels]
    ranges = [_number(keywords.get(f"p{i + 1}r")) for i in range(len(channels))]
    keep = check_values(events, channels, ranges, path=path, non_finite=non_finite)
    dropped = int((~keep).sum())
    if dropped:
        events = events[keep]
    var = pd.DataFrame({"channel": channels, "description": desc, "range": ranges}, index=channels)
    numbers = np.flatnonzero(keep).astype(np.int64)  # each event's number in the file
    adata = ad.AnnData(
        obs=pd.DataFrame({"event": numbers}, index=[f"{sample_id}_{i}" for i in numbers]),
        var=var,
        layers={"raw": np.ascontiguousarray(events, dtype=np.float32)},
    )
    adata.uns["fcs"] = {
        "version": str(sample.version),
        "keywords": keywords,
        "file": path.name,
        "non_finite_dropped": dropped,
    }
    spill = spillover_from_keywords(keywords)
    if spill is not None:
        unknown = sorted(set(spill.index) - set(channels))
        if unknown:
            raise FCSError(f"{path}: spillover names detectors not in the file: {unknown}")
        adata.uns["spillover"] = {
            "detectors": list(spill.index),
            "matrix": spill.to_numpy(),
            "source": "file",
        }
    logger.info("%s: %d events × %d channels (FCS %s)", path, *events.shape, sample.version)
    return adata
