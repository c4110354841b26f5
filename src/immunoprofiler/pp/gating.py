"""Cleaning cytometry events: keep live single cells.

Two ways, chosen by config:

* data-driven gates (default), each computed per file from its own distribution
  (density valleys where there are two populations, median ± k·MAD otherwise);
* a core facility's validated gating — a Gating-ML 2.0 file or a FlowJo 10 workspace —
  applied with FlowKit to the original FCS file, every gate kept as an ``obs`` column.

Gate order (CyTOF): ``not_bead`` (EQ beads: high in every bead channel, no DNA),
``dna`` (intact nucleated cells by the Ir191/Ir193 intercalator), ``event_length``,
``live`` (cisplatin). Flow: ``in_range`` (scatter not saturated, positive), ``cells``
(debris below the FSC-A valley), ``singlets`` (FSC-A/FSC-H ratio, or FSC-W), ``live``
(viability or dump channel the panel marks). Gates whose channels are absent are skipped.
"""

from __future__ import annotations

import io
import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd
from anndata import AnnData

from ..io.panel import BEAD_METALS

logger = logging.getLogger(__name__)

GATE_PREFIX = "gate_"
_G = "{http://www.isac-net.org/std/Gating-ML/v2.0/gating}"
_DT = "{http://www.isac-net.org/std/Gating-ML/v2.0/datatypes}"


def _mad_limits(x: np.ndarray, k: float, floor: float = 0.0) -> tuple[float, float]:
    if len(x) == 0:  # an earlier gate left nothing: this gate has nothing to bound
        return -np.inf, np.inf
    med = float(np.median(x))
    mad = max(1.4826 * float(np.median(np.abs(x - med))), floor)
    return med - k * mad, med + k * mad


def _smoothed_density(x: np.ndarray, bins: int = 256) -> tuple[np.ndarray, np.ndarray]:
    lo, hi = np.percentile(x, [0.1, 99.9])
    if hi <= lo:
        return np.array([lo]), np.array([1.0])
    counts, edges = np.histogram(x, bins=bins, range=(lo, hi))
    kernel = np.exp(-0.5 * (np.arange(-9, 10) / 3.0) ** 2)
    dens = np.convolve(counts, kernel / kernel.sum(), mode="same")
    return (edges[:-1] + edges[1:]) / 2, dens


def valley(x: np.ndarray, *, side: str, depth: float = 0.5) -> float | None:
    """Threshold at the deepest density valley on one ``side`` (``"low"``/``"high"``) of
    the main peak, if a second peak there makes it a real valley (density at the valley
    below ``depth`` × the smaller peak); ``None`` if the distribution is unimodal."""
    if len(x) < 10:  # no distribution to find a valley in (e.g. an earlier gate left none)
        return None
    centers, dens = _smoothed_density(np.asarray(x, dtype=np.float64))
    if len(dens) < 5:
        return None
    peak = int(np.argmax(dens))
    seg = dens[: peak + 1] if side == "low" else dens[peak:]
    if len(seg) < 3:
        return None
    if side == "high":
        seg = seg[::-1]
    # walk from the far end towards the peak: best (second peak, valley) pair
    best, best_ratio = None, depth
    running_max, arg_max = -1.0, 0
    for i, v in enumerate(seg[:-1]):
        if v > running_max:
            running_max, arg_max = v, i
        if running_max <= 0 or i == arg_max:
            continue
        ratio = v / min(running_max, seg[-1])
        if ratio < best_ratio and running_max > 0.01 * seg[-1]:
            best, best_ratio = i, ratio
    if best is None:
        return None
    idx = best if side == "low" else len(dens) - 1 - best
    return float(centers[idx])


def _channels(adata: AnnData, role: str) -> list[int]:
    return list(np.flatnonzero(adata.var["role"].to_numpy() == role))


def auto_gates(
    adata: AnnData,
    *,
    modality: str,
    mad: float = 3.0,
    bead_min: float = 4.5,
) -> dict[str, np.ndarray]:
    """Data-driven gates of one file (ordered; each a boolean per event)."""
    T = adata.layers["transformed"]
    C = adata.layers["compensated"]
    gates: dict[str, np.ndarray] = {}
    thresholds: dict[str, list[float | None]] = {}
    n = adata.n_obs
    keep = np.ones(n, dtype=bool)
    if modality == "cytof":
        dna_idx = _channels(adata, "dna")
        dna = T[:, dna_idx].mean(axis=1) if dna_idx else None
        metal = adata.var.get("metal", pd.Series([""] * adata.n_vars)).astype(str).to_numpy()
        bead_idx = [i for i, m in enumerate(metal) if m in BEAD_METALS]
        if len(bead_idx) >= 2:
            bead = (T[:, bead_idx] > bead_min).all(axis=1)
            if dna is not None:
                bead &= dna < np.median(dna)
            gates["not_bead"] = ~bead
            thresholds["not_bead"] = [bead_min]
            keep &= gates["not_bead"]
        if dna is not None:
            lo, hi = _mad_limits(dna[keep], mad)
            gates["dna"] = (dna >= lo) & (dna <= hi)
            thresholds["dna"] = [lo, hi]
            keep &= gates["dna"]
        length = _channels(adata, "event_length")
        if length:
            x = C[:, length[0]]
            lo, hi = _mad_limits(x[keep], mad)
            gates["event_length"] = (x >= lo) & (x <= hi)
            thresholds["event_length"] = [lo, hi]
            keep &= gates["event_length"]
    else:
        names = list(adata.var_names)
        scatter = [i for i in _channels(adata, "scatter")]
        if scatter:
            rng = adata.var["range"].to_numpy(dtype=np.float64)
            ok = np.ones(n, dtype=bool)
            for i in scatter:
                top = rng[i] if np.isfinite(rng[i]) and rng[i] > 0 else np.inf
                ok &= (C[:, i] > 0) & (C[:, i] < top - 1)
            gates["in_range"] = ok
            keep &= ok
        fsc = next((names.index(c) for c in ("FSC-A", "FSC-H") if c in names), None)
        if fsc is not None:
            cut = valley(C[keep, fsc], side="low")
            gates["cells"] = C[:, fsc] > cut if cut is not None else np.ones(n, dtype=bool)
            thresholds["cells"] = [cut]
            keep &= gates["cells"]
        if "FSC-A" in names and ("FSC-H" in names or "FSC-W" in names):
            if "FSC-H" in names:
                a, h = C[:, names.index("FSC-A")], C[:, names.index("FSC-H")]
                ratio = np.divide(a, h, out=np.full(n, np.inf), where=h > 0)
            else:
                ratio = C[:, names.index("FSC-W")].astype(np.float64)
            _, hi = _mad_limits(ratio[keep], mad)
            gates["singlets"] = ratio <= hi
            thresholds["singlets"] = [hi]
            keep &= gates["singlets"]
    via = _channels(adata, "viability")
    if via:
        x = T[:, via].max(axis=1)
        # dead cells are far brighter than live ones: a valley is only trusted beyond
        # median + k·MAD (two live populations can differ in background dye uptake)
        # (MAD floored at 0.25 arcsinh units: an unstained channel is all zeros)
        cut = max(valley(x[keep], side="high") or -np.inf, _mad_limits(x[keep], mad, 0.25)[1])
        gates["live"] = x <= cut
        thresholds["live"] = [cut]
    adata.uns["gating"] = {
        "method": "auto",
        "thresholds": {
            k: [np.nan if v is None else float(v) for v in vs] for k, vs in thresholds.items()
        },
    }
    return gates


def _sanitize_gatingml(path: Path) -> io.BytesIO:
    """FlowJo-exported Gating-ML often fails the schema: drop its non-Gating-ML attributes
    and give dimensions without ``compensation-ref`` one (``Comp-X`` → ``X`` compensated with
    the file's spillover, any other name uncompensated)."""
    from lxml import etree

    doc = etree.parse(str(path))
    for el in doc.iter():
        if not isinstance(el.tag, str):
            continue
        if el.tag.startswith(_G):
            for a in [a for a in el.attrib if not a.startswith("{")]:
                del el.attrib[a]
        if el.tag == f"{_G}dimension" and f"{_G}compensation-ref" not in el.attrib:
            dim = el.find(f"{_DT}fcs-dimension")
            name = dim.get(f"{_DT}name", "") if dim is not None else ""
            if name.startswith("Comp-"):
                dim.set(f"{_DT}name", name[len("Comp-") :])
                el.set(f"{_G}compensation-ref", "FCS")
            else:
                el.set(f"{_G}compensation-ref", "uncompensated")
    return io.BytesIO(etree.tostring(doc))


def gate_column(name: str) -> str:
    return GATE_PREFIX + re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_")


def file_gates(fcs_path: str | Path, gating: str | Path) -> dict[str, np.ndarray]:
    """Memberships of every gate of a Gating-ML 2.0 file or FlowJo 10 workspace (``.wsp``)
    applied by FlowKit to ``fcs_path``; keys are gate names (``parent/name`` if a name
    repeats)."""
    import flowkit as fk

    fcs_path, gating = Path(fcs_path), Path(gating)
    if gating.suffix.lower() == ".wsp":
        wsp = fk.Workspace(str(gating), fcs_samples=[str(fcs_path)])
        sid = fcs_path.name
        if sid not in wsp.get_sample_ids():
            raise ValueError(
                f"FlowJo workspace {gating} has no sample '{sid}' (it has {wsp.get_sample_ids()})"
            )
        wsp.analyze_samples(sample_id=sid)
        res = wsp.get_gating_results(sid)
        ids = wsp.get_gate_ids(sid)
    else:
        try:
            strategy = fk.parse_gating_xml(str(gating))
        except ValueError:
            strategy = fk.parse_gating_xml(_sanitize_gatingml(gating))
        sample = fk.Sample(str(fcs_path), ignore_offset_error=True, subsample=0)
        res = strategy.gate_sample(sample)
        ids = strategy.get_gate_ids()
    names = [g for g, _ in ids]
    out = {}
    for name, path in ids:
        key = name if names.count(name) == 1 else f"{path[-1]}/{name}"
        out[key] = np.asarray(res.get_gate_membership(name, gate_path=path), dtype=bool)
    return out


def clean(
    adata: AnnData,
    *,
    modality: str,
    fcs_path: str | Path | None = None,
    gating: str | Path | None = None,
    population: str | None = None,
    mad: float = 3.0,
    bead_min: float = 4.5,
) -> pd.DataFrame:
    """Gate one file: boolean ``obs["gate_*"]`` columns and ``obs["retained"]``.

    Returns the event counts: ``gate`` (in order, ``all events`` first, ``retained``
    last), ``events`` (passing this gate and all before it; for a gating file the gate's
    own hierarchical count) and ``fraction`` of all events.
    """
    if gating:
        if not population:
            raise ValueError(
                f"a gating file ({gating}) needs cyto.clean.population: the gate whose "
                "events are kept"
            )
        gates = file_gates(fcs_path, gating)
        if population not in gates:
            raise ValueError(
                f"gate '{population}' is not in {gating}; gates there: {sorted(gates)}"
            )
        retained = gates[population]
        counts = [(name, int(m.sum())) for name, m in gates.items()]
        adata.uns["gating"] = {"method": "file", "file": str(gating), "population": population}
    else:
        gates = auto_gates(adata, modality=modality, mad=mad, bead_min=bead_min)
        retained = np.ones(adata.n_obs, dtype=bool)
        counts = []
        for name, m in gates.items():
            retained = retained & m
            counts.append((name, int(retained.sum())))
    for name, m in gates.items():
        adata.obs[gate_column(name)] = m
    adata.obs["retained"] = retained
    n = max(adata.n_obs, 1)
    rows = [("all events", adata.n_obs), *counts, ("retained", int(retained.sum()))]
    table = pd.DataFrame(rows, columns=["gate", "events"])
    table["fraction"] = (table["events"] / n).round(4)
    logger.info("retained %d of %d events", int(retained.sum()), adata.n_obs)
    return table
