"""A cytometry simulator (CyTOF and flow FCS files) with ground truth.

Immune populations are drawn as marker levels on the arcsinh scale (negative, dim,
positive, bright) plus noise, then turned back into instrument values: ion counts for
CyTOF (cofactor 5, clipped at 0) and fluorescence for flow (cofactor 150, negatives
kept, then mixed by a spillover matrix that is written into ``$SPILLOVER``). Each batch
multiplies every marker by its own factor (a batch effect to normalise). Events that
are not live single cells are added on purpose: EQ beads, dead cells (cisplatin / dye
bright) and doublets for CyTOF; debris, doublets (FSC-A > FSC-H) and dead cells for
flow. Channel names follow the instruments: ``Nd142Di`` with the marker in ``$PnS``
(CyTOF), ``FITC-A`` with the marker in ``$PnS`` (flow).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

NEG, DIM, POS, HI = 0.2, 1.6, 3.4, 4.6

# marker levels per population (arcsinh units); absent markers are negative
POPULATIONS: dict[str, tuple[float, dict[str, float]]] = {
    "CD4 T cell": (
        0.30,
        {"CD45": HI, "CD3": POS, "CD4": POS, "CD127": POS, "CD45RA": DIM, "CD27": POS},
    ),
    "regulatory T cell": (
        0.03,
        {"CD45": HI, "CD3": POS, "CD4": POS, "CD25": HI, "FoxP3": POS, "CD127": NEG, "CD27": POS},
    ),
    "CD8 T cell": (
        0.14,
        {"CD45": HI, "CD3": POS, "CD8a": HI, "CD45RA": POS, "CD27": DIM, "CD127": DIM},
    ),
    "gamma-delta T cell": (0.03, {"CD45": HI, "CD3": POS, "TCRgd": POS, "CD16": DIM}),
    "NK cell": (0.10, {"CD45": HI, "CD56": POS, "CD16": HI, "CD45RA": POS, "CD38": POS}),
    "B cell": (
        0.10,
        {"CD45": HI, "CD19": POS, "CD20": HI, "HLA-DR": HI, "CD45RA": POS, "CD27": DIM},
    ),
    "plasmablast": (0.01, {"CD45": HI, "CD19": DIM, "CD27": HI, "CD38": HI, "HLA-DR": POS}),
    "classical monocyte": (
        0.18,
        {"CD45": HI, "CD14": HI, "CD33": POS, "HLA-DR": POS, "CD11c": POS, "CD4": DIM},
    ),
    "non-classical monocyte": (
        0.04,
        {"CD45": HI, "CD16": HI, "HLA-DR": POS, "CD11c": POS, "CD33": DIM},
    ),
    "conventional dendritic cell": (0.02, {"CD45": HI, "HLA-DR": HI, "CD11c": HI, "CD33": DIM}),
    "plasmacytoid dendritic cell": (
        0.01,
        {"CD45": HI, "CD123": HI, "HLA-DR": POS, "CD4": DIM, "CD45RA": POS},
    ),
    "basophil": (0.01, {"CD45": POS, "CD123": POS, "CD38": POS}),
}
STATE = {
    "Ki67": {"CD8 T cell": DIM, "plasmablast": POS},
    "pSTAT1": {"classical monocyte": DIM},
    "GranzymeB": {"NK cell": POS, "CD8 T cell": DIM},
    "PD-1": {"CD8 T cell": DIM, "regulatory T cell": DIM},
}
CYTOF_PANEL = [
    ("Y89Di", "CD45"),
    ("Pr141Di", "CD3"),
    ("Nd142Di", "CD19"),
    ("Nd143Di", "CD4"),
    ("Nd144Di", "CD8a"),
    ("Nd145Di", "CD16"),
    ("Nd146Di", "CD56"),
    ("Sm147Di", "CD14"),
    ("Nd148Di", "CD11c"),
    ("Sm149Di", "CD123"),
    ("Sm150Di", "HLA-DR"),
    ("Eu151Di", "CD20"),
    ("Sm152Di", "TCRgd"),
    ("Eu153Di", "CD25"),
    ("Sm154Di", "FoxP3"),
    ("Gd155Di", "CD127"),
    ("Gd156Di", "CD27"),
    ("Gd158Di", "CD38"),
    ("Dy161Di", "CD33"),
    ("Ho165Di", "CD45RA"),
    ("Dy162Di", "Ki67"),
    ("Er166Di", "pSTAT1"),
    ("Er167Di", "GranzymeB"),
    ("Er168Di", "PD-1"),
]
CYTOF_EXTRA = [
    ("Ce140Di", ""),
    ("Lu175Di", ""),
    ("Ir191Di", "DNA1"),
    ("Ir193Di", "DNA2"),
    ("Pt195Di", "Cisplatin"),
]
BEADS = ("Ce140Di", "Eu151Di", "Eu153Di", "Ho165Di", "Lu175Di")
FLOW_PANEL = [
    ("FITC-A", "CD3"),
    ("PE-A", "CD56"),
    ("PerCP-Cy5-5-A", "CD4"),
    ("PE-Cy7-A", "CD8"),
    ("APC-A", "CD19"),
    ("APC-H7-A", "CD14"),
    ("BV421-A", "CD16"),
    ("BV605-A", "HLA-DR"),
    ("BV711-A", "CD45"),
    ("BV786-A", "PD-1"),  # a state marker (the demo's planted activation effect)
    ("BV510-A", "Live/Dead"),
]
FLOW_POPULATIONS = (
    "CD4 T cell",
    "CD8 T cell",
    "NK cell",
    "B cell",
    "classical monocyte",
    "non-classical monocyte",
)
COFACTOR = {"cytof": 5.0, "flow": 150.0}


def spillover_matrix(detectors: list[str], seed: int = 7) -> pd.DataFrame:
    """A plausible flow spillover matrix: 1 on the diagonal, a few % into neighbours."""
    rng = np.random.default_rng(seed)
    n = len(detectors)
    S = np.eye(n)
    for i in range(n):
        for j in range(n):
            if i != j and abs(i - j) <= 2:
                S[i, j] = rng.uniform(0.01, 0.15) / abs(i - j)
    return pd.DataFrame(S, index=detectors, columns=detectors)


def _levels(
    pops: list[str],
    markers: list[str],
    n: int,
    rng: np.random.Generator,
    batch: int,
    abundance: Mapping[str, float] | None = None,
    state: Mapping[str, Mapping[str, float]] | None = None,
):
    fr = np.array([POPULATIONS[p][0] * (abundance or {}).get(p, 1.0) for p in pops])
    labels = rng.choice(len(pops), size=n, p=fr / fr.sum())
    L = np.full((len(pops), len(markers)), NEG)
    alias = {"CD8": "CD8a"}  # the flow panel's name of the CyTOF panel's CD8a
    for i, p in enumerate(pops):
        for j, m in enumerate(markers):
            L[i, j] = POPULATIONS[p][1].get(alias.get(m, m), NEG)
            if m in STATE:
                L[i, j] = STATE[m].get(p, NEG)
            L[i, j] += (state or {}).get(p, {}).get(m, 0.0)
    Y = L[labels] + rng.normal(0, 0.3, size=(n, len(markers)))
    shift = np.random.default_rng(1000 + batch).normal(0, 0.25, len(markers))  # batch effect
    return labels, Y + shift * (Y > 1.0)


def simulate_cytometry(
    n_events: int,
    *,
    modality: str,
    batch: int = 0,
    seed: int = 0,
    abundance: Mapping[str, float] | None = None,
    state: Mapping[str, Mapping[str, float]] | None = None,
) -> tuple[np.ndarray, list[str], list[str], pd.DataFrame, pd.DataFrame | None]:
    """Events of one file: ``(events, $PnN, $PnS, truth, spillover)``.

    ``abundance`` multiplies populations' weights, as in :func:`~.demo.simulate_pbmc`;
    ``state`` shifts markers of populations (``{population: {marker: arcsinh units}}``):
    a state change, the populations' type markers untouched.

    ``truth`` has ``true_cell_type`` and ``kind`` (``cell``, ``bead``, ``dead``,
    ``doublet``, ``debris``) per event, in file order.
    """
    rng = np.random.default_rng(seed)
    c = COFACTOR[modality]
    if modality == "cytof":
        panel = CYTOF_PANEL
        pops = list(POPULATIONS)
    elif modality == "flow":
        panel = FLOW_PANEL[:-1]
        pops = list(FLOW_POPULATIONS)
    else:
        raise ValueError(f"modality must be cytof or flow, not {modality!r}")
    markers = [m for _, m in panel]
    labels, Y = _levels(pops, markers, n_events, rng, batch, abundance, state)
    kind = np.full(n_events, "cell", dtype=object)
    r = rng.random(n_events)
    lin = np.sinh(Y) * c
    if modality == "cytof":
        kind[r < 0.03] = "bead"
        kind[(r >= 0.03) & (r < 0.08)] = "dead"
        kind[(r >= 0.08) & (r < 0.12)] = "doublet"
        partner = rng.integers(0, n_events, n_events)
        dbl = kind == "doublet"
        lin[dbl] = lin[dbl] + lin[partner[dbl]]
        lin = np.clip(lin + rng.poisson(0.5, lin.shape), 0, None)
        names = [ch for ch, _ in panel] + [ch for ch, _ in CYTOF_EXTRA]
        desc = markers + [d for _, d in CYTOF_EXTRA]
        extra = np.zeros((n_events, len(CYTOF_EXTRA)))
        dna = rng.normal(5.6, 0.15, n_events) + 0.69 * dbl
        dead = kind == "dead"
        dna[dead] -= 0.6
        extra[:, 2] = np.sinh(dna) * c
        extra[:, 3] = np.sinh(dna + 0.6) * c
        extra[:, 4] = np.sinh(rng.normal(0.5, 0.3, n_events) + 4.5 * dead) * c
        length = rng.normal(22, 3, n_events) * (1 + dbl)
        X = np.column_stack([lin, extra])
        bead = kind == "bead"
        X[bead] = np.clip(rng.poisson(0.5, (bead.sum(), X.shape[1])), 0, None)
        for ch in BEADS:
            X[bead, names.index(ch)] = np.sinh(rng.normal(6.5, 0.2, bead.sum())) * c
        X[bead, names.index("Ir191Di")] = rng.poisson(2, bead.sum())
        X[bead, names.index("Ir193Di")] = rng.poisson(2, bead.sum())
        length[bead] = rng.normal(15, 3, bead.sum())
        time = np.sort(rng.uniform(0, 6e5, n_events))
        X = np.column_stack([time, np.clip(length, 5, None), X])
        names, desc = ["Time", "Event_length", *names], ["", "", *desc]
        spill = None
    else:
        kind[r < 0.05] = "debris"
        kind[(r >= 0.05) & (r < 0.09)] = "dead"
        kind[(r >= 0.09) & (r < 0.13)] = "doublet"
        mono = np.isin(np.array(pops)[labels], ["classical monocyte", "non-classical monocyte"])
        fsc_a = rng.normal(62_000, 6_000, n_events) + 30_000 * mono
        ssc_a = rng.normal(16_000, 3_000, n_events) + 24_000 * mono
        dbl = kind == "doublet"
        partner = rng.integers(0, n_events, n_events)
        fsc_h = fsc_a / rng.normal(1.15, 0.03, n_events)
        fsc_a[dbl] = fsc_a[dbl] + fsc_a[partner[dbl]]
        fsc_h[dbl] = fsc_h[dbl] * rng.normal(1.1, 0.05, dbl.sum())
        ssc_a[dbl] = ssc_a[dbl] + ssc_a[partner[dbl]]
        lin[dbl] = lin[dbl] + lin[partner[dbl]]
        deb = kind == "debris"
        fsc_a[deb] = rng.gamma(2, 5_000, deb.sum())
        fsc_h[deb] = fsc_a[deb] / 1.1
        ssc_a[deb] = rng.gamma(2, 3_000, deb.sum())
        lin[deb] = np.sinh(rng.normal(0.3, 0.5, (deb.sum(), lin.shape[1]))) * c
        ld = np.sinh(rng.normal(0.3, 0.3, n_events) + 3.5 * (kind == "dead")) * c
        fluor = np.column_stack([lin, ld])
        detectors = [ch for ch, _ in FLOW_PANEL]
        spill = spillover_matrix(detectors)
        fluor = fluor @ spill.to_numpy()
        time = np.sort(rng.uniform(0, 1e4, n_events))
        X = np.column_stack(
            [
                np.clip(fsc_a, 1, 262_143),
                np.clip(fsc_h, 1, 262_143),
                np.clip(ssc_a, 1, 262_143),
                fluor,
                time,
            ]
        )
        names = ["FSC-A", "FSC-H", "SSC-A", *detectors, "Time"]
        desc = ["", "", "", *[m for _, m in FLOW_PANEL], ""]
    truth = pd.DataFrame(
        {"event": np.arange(n_events), "true_cell_type": np.array(pops)[labels], "kind": kind}
    )
    return X.astype(np.float32), names, desc, truth, spill


def write_fcs(
    path: str | Path,
    events: np.ndarray,
    channels: list[str],
    descriptions: list[str],
    *,
    spillover: pd.DataFrame | None = None,
    keywords: dict[str, str] | None = None,
) -> None:
    """Write events as an FCS 3.1 file (FlowIO), with ``$SPILLOVER`` if given."""
    import flowio

    meta = dict(keywords or {})
    if spillover is not None:
        vals = ",".join(f"{v:.6g}" for v in spillover.to_numpy().ravel())
        meta["spillover"] = f"{len(spillover)},{','.join(spillover.index)},{vals}"
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        flowio.create_fcs(
            fh,
            np.asarray(events, dtype=np.float32).ravel().tolist(),
            channel_names=list(channels),
            opt_channel_names=[d or None for d in descriptions],
            metadata_dict=meta,
        )
