"""Cytometry panels: which channel measures which marker, and what it is used for.

A panel TSV has one row per channel: ``channel`` ($PnN), ``marker``, ``marker_class``
(``type`` = used for clustering and annotation, ``state`` = reported per population,
``none`` = not a marker) and optionally ``cofactor`` (arcsinh) and ``role``.

Without a panel one is derived from the FCS header. CyTOF software has written
channel names in four styles, all understood here::

    Nd142Di          $PnS = CD19            (CyTOF 2/Helios)
    (Sm154)Di        $PnS = CD3             (CyTOF 1 software)
    CD3(110:114)Dd   $PnS = CD3             (marker in $PnN, summed isotope range)
    170Yb_CD3        $PnS = 170Yb_CD3       (mass-first, marker after "_")

``role`` tells the cleaning step what a ``none`` channel is: ``dna``, ``bead``,
``viability``, ``time``, ``event_length``, ``barcode``, ``scatter``, ``unused``
(``marker`` for real markers).
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..failures import SampleError

PANEL_COLUMNS = ("channel", "marker", "marker_class", "cofactor", "role")
MARKER_CLASSES = ("type", "state", "none")
ROLES = (
    "marker",
    "dna",
    "bead",
    "viability",
    "time",
    "event_length",
    "barcode",
    "scatter",
    "unused",
)
DEFAULT_COFACTOR = {"cytof": 5.0, "flow": 150.0}
# EQ four-element calibration beads (plus Ce140 in the five-element version)
BEAD_METALS = ("Ce140", "Eu151", "Eu153", "Ho165", "Lu175")
DNA_METALS = ("Ir191", "Ir193")
VIABILITY_METALS = ("Pt194", "Pt195", "Pt196", "Pt198", "Rh103")

_METAL = r"([A-Z][a-z]?)(\d{2,3})"
_STYLES = (
    re.compile(rf"^{_METAL}D[id]$"),  # Nd142Di
    re.compile(rf"^\({_METAL}\)D[id]$"),  # (Sm154)Di
    re.compile(rf"^(?P<marker>.+?)\({_METAL}\)D[id]$"),  # CD45(In115)Dd
    re.compile(r"^(?P<marker>.+?)\((?P<range>\d{2,3}:\d{2,3})\)D[id]$"),  # CD3(110:114)Dd
    re.compile(r"^(\d{2,3})([A-Z][a-z]?)_(?P<marker>.+)$"),  # 170Yb_CD3
)
_FLUOR = re.compile(
    r"^(FITC|PE|APC|PerCP|BV\d+|BUV\d+|BB\d+|AF\d+|Alexa|Pacific|PacBlu|Qdot|Cy\d|eFluor|"
    r"Horizon|V\d+|B\d+|R\d+|G\d+|BD|Texas|Red|Blue|Green|Orange|H7|Cy5\.5|Cy7|B|A|Am)",
    re.IGNORECASE,
)
_STATE = re.compile(
    r"^(p[A-Z0-9].*|.*STAT\d.*|CREB|S6|ERK.*|MAPKAPK2|IkB.*|NFkB|p38|KI-?67|IFN.*|TNF.*|"
    r"IL-?\d+.*|GM-?CSF|Granzyme.*|GZM.*|Perforin|MIP-?1.*|CD107a|CD69|CD154|TIM-?3|"
    r"PD-?1|CTLA-?4|CD152|LAG-?3|GFP|Tbet|T-bet|CD279|Caspase.*|cPARP|IdU|CyclinB1|Rb)$",
    re.IGNORECASE,
)
_ROLE_PATTERNS = (
    ("time", re.compile(r"^time\b", re.IGNORECASE)),
    ("event_length", re.compile(r"^(event|cell)[_ ]?length$", re.IGNORECASE)),
    ("scatter", re.compile(r"^(FSC|SSC)(-[AHW])?\b", re.IGNORECASE)),
    ("dna", re.compile(r"^(DNA[-_ ]?\d?|Ir19[13]|19[13]|Iridium.*|intercalator.*)$", re.I)),
    ("bead", re.compile(r"^(bead.*|EQ.*)$", re.IGNORECASE)),
    (
        "viability",
        re.compile(
            r"^(cisplatin|viability|live.*|dead.*|l/?d|vivid.*|zombie.*|7-?AAD|DAPI|PI|"
            r"LIVE/DEAD.*|Pt19\d)\b",
            re.IGNORECASE,
        ),
    ),
    ("barcode", re.compile(r"^(BC\d*|barcode.*|\d{3})$", re.IGNORECASE)),
    (
        "unused",
        re.compile(
            r"^(Center|Offset|Width|Residual|beadDist|Event_?#?|Cell_?#?|Event)$", re.IGNORECASE
        ),
    ),
)


class PanelError(SampleError):
    """A panel file is malformed or does not match the FCS file."""


def parse_channel(channel: str, description: str = "") -> tuple[str | None, str]:
    """``(metal, marker)`` of one channel from its $PnN and $PnS.

    ``metal`` is e.g. ``"Nd142"`` (``"Cd110:114"`` for a summed range, ``None`` for
    fluorescence or scatter channels). ``marker`` is the antibody target as written,
    without metal or fluorochrome, or ``""`` if the channel has none.

    Examples
    --------
    >>> parse_channel("CD3(110:114)Dd", "CD3")
    ('Cd110:114', 'CD3')
    >>> parse_channel("170Yb_CD3", "170Yb_CD3")
    ('Yb170', 'CD3')
    >>> parse_channel("FL1-H", "CD4 FITC")
    (None, 'CD4')
    """
    channel, description = channel.strip(), (description or "").strip()
    metal, from_name = None, ""
    for style in _STYLES:
        m = style.match(channel)
        if not m:
            continue
        groups = m.groupdict()
        if groups.get("range"):
            metal = f"Cd{groups['range']}"
        elif channel[0].isdigit():
            metal = f"{m.group(2)}{m.group(1)}"
        else:
            g = [x for x in m.groups() if x and x != groups.get("marker")]
            metal = f"{g[0]}{g[1]}"
        from_name = (groups.get("marker") or "").strip()
        break
    marker = description
    if marker in ("", channel) or (metal and marker.replace("_", "") == channel.replace("_", "")):
        marker = from_name
    m = _STYLES[4].match(marker) if marker else None
    if m:  # $PnS itself written mass-first ("170Yb_CD3")
        marker = m.group("marker")
    if metal and marker and re.fullmatch(rf"\(?{metal}\)?D[id]|{metal}", marker):
        marker = ""
    tokens = marker.split()
    if len(tokens) > 1 and all(_FLUOR.match(t) for t in tokens[1:]):
        marker = tokens[0]  # "CD4 FITC", "CD8 B PE"
    return metal, marker


def channel_role(channel: str, marker: str, metal: str | None) -> str:
    """What a channel is used for (see the module docstring)."""
    for role, pattern in _ROLE_PATTERNS:
        if pattern.match(channel) or (marker and pattern.match(marker)):
            return role
    base = metal.split(":")[0] if metal else None
    if base in DNA_METALS and not marker:
        return "dna"
    if base in VIABILITY_METALS and not marker:
        return "viability"
    if base in BEAD_METALS and not marker:
        return "bead"
    if not marker:
        return "unused"
    return "marker"


def canonical_marker(name: str) -> str:
    """Comparable form of a marker name: upper case, Greek letters spelled, no punctuation.

    ``HLA-DR`` / ``HLADR`` → ``HLADR``; ``NK1.1`` / ``NK1/1`` / ``NK1_1`` → ``NK11``;
    ``TCRγδ`` → ``TCRGD``.
    """
    greek = {"α": "A", "β": "B", "γ": "G", "δ": "D", "κ": "K", "λ": "L"}
    s = "".join(greek.get(ch, ch) for ch in name)
    s = unicodedata.normalize("NFKD", s).encode("ascii", "ignore").decode()
    return re.sub(r"[^A-Z0-9]", "", s.upper())


def derive_panel(
    channels: Sequence[str], descriptions: Sequence[str], *, modality: str
) -> pd.DataFrame:
    """A panel from FCS channel names ($PnN) and descriptions ($PnS).

    Markers that match known signalling / function patterns are ``state``, the
    other markers ``type``; everything that is not a marker is ``none``. A marker
    name used by two channels gets the channel appended the second time.
    """
    rows, seen = [], set()
    for ch, desc in zip(channels, descriptions, strict=True):
        metal, marker = parse_channel(ch, desc)
        role = channel_role(ch, marker, metal)
        if role != "marker":
            cls = "none"
            marker = marker or ch
        else:
            cls = "state" if _STATE.match(marker) else "type"
        if marker in seen:
            marker = f"{marker}_{ch}"
        seen.add(marker)
        rows.append(
            {
                "channel": ch,
                "marker": marker,
                "marker_class": cls,
                "cofactor": DEFAULT_COFACTOR[modality],
                "role": role,
            }
        )
    return pd.DataFrame(rows, columns=list(PANEL_COLUMNS))


def read_panel(
    path: str | Path,
    channels: Sequence[str],
    descriptions: Sequence[str] | None = None,
    *,
    modality: str,
) -> pd.DataFrame:
    """Read a panel TSV and complete it for the file's ``channels``.

    Channels of the file that the panel does not list are ``none``/``unused``; a
    panel channel the file lacks is an error. Missing ``cofactor`` / ``role``
    columns are filled from the modality default and from :func:`derive_panel`.
    """
    try:
        df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    except Exception as err:
        raise PanelError(f"panel {path}: cannot be read as TSV ({err})") from err
    need = {"channel", "marker", "marker_class"}
    if missing := need - set(df.columns):
        raise PanelError(f"panel {path}: missing column(s) {sorted(missing)}")
    bad = sorted(set(df["marker_class"]) - set(MARKER_CLASSES))
    if bad:
        raise PanelError(f"panel {path}: marker_class must be type/state/none, found {bad}")
    absent = sorted(set(df["channel"]) - set(channels))
    if absent:
        raise PanelError(f"panel {path}: channel(s) {absent} are not in the FCS file")
    derived = derive_panel(
        channels, descriptions or [""] * len(channels), modality=modality
    ).set_index("channel")
    df = df.set_index("channel")
    out = derived.copy()
    out.loc[df.index, "marker"] = df["marker"].where(df["marker"] != "", df.index.to_series())
    out.loc[df.index, "marker_class"] = df["marker_class"]
    if "cofactor" in df:
        given = df["cofactor"][df["cofactor"] != ""]
        try:
            out.loc[given.index, "cofactor"] = given.astype(float)
        except ValueError as err:
            raise PanelError(f"panel {path}: cofactor must be a number ({err})") from err
    if "role" in df:
        given = df["role"][df["role"] != ""]
        if bad := sorted(set(given) - set(ROLES)):
            raise PanelError(f"panel {path}: unknown role(s) {bad}; allowed {ROLES}")
        out.loc[given.index, "role"] = given
    marked = df.index[df["marker_class"] != "none"]
    out.loc[marked, "role"] = "marker"
    unlisted = out.index.difference(df.index)
    out.loc[unlisted, "marker_class"] = "none"
    if out["marker"].duplicated().any():
        dup = sorted(out.loc[out["marker"].duplicated(), "marker"])
        raise PanelError(f"panel {path}: marker names used twice: {dup}")
    out["cofactor"] = out["cofactor"].astype(float)
    return out.reset_index()[list(PANEL_COLUMNS)]


#: marker classes analysed downstream (``none``: DNA, beads, viability, scatter…)
ANALYSED_CLASSES = ("type", "state")


@dataclass(frozen=True)
class SharedPanel:
    """The markers files analysed together share (:func:`shared_markers`)."""

    #: one row per shared marker (index: the first file's marker name): ``channel`` (the
    #: first file's), ``marker_class``
    var: pd.DataFrame
    #: per file, its channel of each shared marker (in ``var``'s order)
    channels: list[list[str]]
    #: per file, its analysed markers left out because another file lacks them
    dropped: dict[str, list[str]]


def shared_markers(vars_: Sequence[pd.DataFrame], *, names: Sequence[str]) -> SharedPanel:
    """The ``type`` / ``state`` markers every file of a panel group has (``vars_``: each
    file's ``var`` indexed by channel, ``names``: the files).

    Markers are matched by :func:`canonical_marker` name, so ``HLA-DR`` on one panel is
    ``HLADR`` on another and the channel may differ between instruments. Files of one panel
    share every marker; panels merged on purpose (``cyto.merge_panels: shared``, or one sheet
    ``panel_group`` holding several panels) keep the intersection, cyCombine-style, and each
    file's left-out markers are returned. A marker that is ``type`` in one file and
    ``state`` in another is ``state``. Raise :class:`PanelError` when no ``type`` marker is
    shared (nothing to cluster on).
    """
    analysed = [v[v["marker_class"].isin(ANALYSED_CLASSES)] for v in vars_]
    keys = [[canonical_marker(str(m)) for m in v["marker"]] for v in analysed]
    common = set(keys[0]).intersection(*map(set, keys[1:]))
    first = analysed[0]
    order = [k for k in keys[0] if k in common]
    classes = {
        k: "type"
        if all(
            v["marker_class"].iloc[ks.index(k)] == "type"
            for v, ks in zip(analysed, keys, strict=True)
        )
        else "state"
        for k in order
    }
    if not any(c == "type" for c in classes.values()):
        panels = "; ".join(
            f"{n}: {list(v['marker'])}" for n, v in zip(names, analysed, strict=True)
        )
        raise PanelError(
            f"the files of this panel group share no 'type' marker to cluster on ({panels}); "
            "give them different panel_group values in the sheet"
        )
    var = pd.DataFrame(
        {
            "channel": [str(first.index[keys[0].index(k)]) for k in order],
            "marker_class": [classes[k] for k in order],
        },
        index=pd.Index([str(first["marker"].iloc[keys[0].index(k)]) for k in order], name=None),
    )
    channels = [
        [str(v.index[ks.index(k)]) for k in order] for v, ks in zip(analysed, keys, strict=True)
    ]
    dropped = {
        str(n): [str(m) for m, k in zip(v["marker"], ks, strict=True) if k not in common]
        for n, v, ks in zip(names, analysed, keys, strict=True)
    }
    return SharedPanel(var, channels, {n: d for n, d in dropped.items() if d})


# --- panel groups: files analysed together ----------------------------------------------

#: a panel group name (sheet column ``panel_group``): it becomes part of output paths
GROUP_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_]*$")


def panel_signature(table: pd.DataFrame) -> frozenset[tuple[str, str]]:
    """What makes two files' panels the same for analysis: their ``type`` / ``state`` markers
    (canonical names) with their classes; channels, order and ``none`` channels do not count."""
    analysed = table[table["marker_class"].isin(ANALYSED_CLASSES)]
    return frozenset(
        (canonical_marker(str(m)), str(c))
        for m, c in zip(analysed["marker"], analysed["marker_class"], strict=True)
    )


def file_panel(fcs: str | Path, panel: str | Path | None, *, modality: str) -> pd.DataFrame:
    """The panel of one file as its ingest step will see it, from the FCS header alone (the
    sheet's panel file checked against the header, or the panel derived from it)."""
    from .fcs import read_header_channels

    channels, descriptions = read_header_channels(fcs)
    if panel:
        return read_panel(panel, channels, descriptions, modality=modality)
    return derive_panel(channels, descriptions, modality=modality)


def assign_panel_groups(
    signatures: Sequence[frozenset[tuple[str, str]] | None],
    *,
    explicit: Sequence[str],
    panels: Sequence[str],
    merge: bool,
) -> list[str]:
    """The panel group of each file of one modality.

    Files with the same analysed markers (:func:`panel_signature`) form a group, unless the
    sheet names the group (``explicit``, empty = detect). Detected groups are named after
    their panel file when all their files share one (its stem), else ``panel1``,
    ``panel2``… in sheet order. A file whose header could not be read (``None``; its ingest
    job will say why) or that does not exist yet joins the largest group. ``merge`` puts
    every file in one group (clustered on the markers all panels share). A modality with one
    group has the group name ``all`` unless the sheet names it.
    """
    n = len(signatures)
    if merge:
        named = {e for e in explicit if e}
        return [next(iter(named)) if len(named) == 1 else "all"] * n
    keys: list[object] = [
        ("explicit", e) if e else ("panel", s) if s is not None else None
        for e, s in zip(explicit, signatures, strict=True)
    ]
    known = [k for k in keys if k is not None]
    if not known:
        return [next((e for e in explicit if e), "all")] * n
    largest = max(dict.fromkeys(known), key=known.count)  # ties: first in the sheet
    keys = [k if k is not None else largest for k in keys]
    order = list(dict.fromkeys(keys))
    if len(order) == 1:
        return [order[0][1] if order[0][0] == "explicit" else "all"] * n
    names: dict[object, str] = {}
    taken = {k[1] for k in order if k[0] == "explicit"}
    detected = itertools.count(1)
    for key in order:
        if key[0] == "explicit":
            names[key] = key[1]
            continue
        i = next(detected)
        files = {p for p, k in zip(panels, keys, strict=True) if k == key}
        only = next(iter(files)) if len(files) == 1 else ""
        stem = re.sub(r"[^A-Za-z0-9_]", "_", Path(only).stem) if only else ""
        name = stem if GROUP_NAME.match(stem) else f"panel{i}"
        while name in taken:
            name += "_"
        taken.add(name)
        names[key] = name
    return [names[k] for k in keys]
