"""10x Chromium chemistries: where R1 holds the cell barcode and UMI, which barcode whitelist
the kit uses, and which way R2 reads the transcript — and which chemistry a run is, from its
reads.

Detection (config ``rna.chemistry: auto``) follows Cell Ranger's idea: R1 must be long enough
for barcode + UMI, and the chemistry is the one whose whitelist holds most of the reads'
barcodes (3′ v2 and 5′ share a whitelist; the sheet or config tells them apart: the 3′ kit is
assumed unless ``rna.chemistry`` names a 5′ one). The choice and its evidence are returned
to be logged and recorded.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from ..failures import SampleError
from .fastq import is_gzip


@dataclass(frozen=True)
class Chemistry:
    """A 10x kit's read layout: R1 = barcode (``barcode`` bases) + UMI (``umi`` bases)."""

    name: str
    barcode: int
    umi: int
    whitelist: str  # the 10x whitelist's name (as Cell Ranger ships it)
    strand: Literal["forward", "reverse"]  # R2 relative to the transcript
    kb: str  # kb-python's technology string (``kb --list``)

    @property
    def r1_length(self) -> int:
        return self.barcode + self.umi


#: the chemistries ``rna.chemistry`` may name (3′ v3.1 reads as v3)
CHEMISTRIES: dict[str, Chemistry] = {
    c.name: c
    for c in (
        Chemistry("10xv2", 16, 10, "737K-august-2016", "forward", "10XV2"),
        Chemistry("10xv3", 16, 12, "3M-february-2018", "forward", "10XV3"),
        Chemistry("10xv4", 16, 12, "3M-3pgex-may-2023", "forward", "10XV4"),
        Chemistry("10x5v2", 16, 10, "737K-august-2016", "reverse", "10XV2"),
    )
}

#: fewest R1 barcodes in a whitelist for a chemistry to be accepted
MIN_WHITELIST_FRACTION = 0.5


class ChemistryError(SampleError):
    """A run's reads do not fit the configured (or any) chemistry."""


def packaged_whitelist(chemistry: Chemistry) -> Path:
    """The kit's barcode whitelist as kb-python installs it (from ngs-tools: gzip, on disk,
    nothing downloaded)."""
    from kb_python.config import TECHNOLOGIES_MAPPING

    return Path(TECHNOLOGIES_MAPPING[chemistry.kb].chemistry.whitelist_path)


def candidate_whitelists(
    chemistry: str, whitelist: str, whitelist_file: str | Path | None = None
) -> dict[str, Path]:
    """The whitelists a run's chemistry is detected (or checked) against, by 10x name
    (config ``rna.chemistry`` and ``rna.whitelist``): ``kit`` — the kits' own, as kb-python
    installs them (the configured kit's, or every 3′ kit's for ``auto``); ``none`` — none
    (barcodes uncorrected); a file (``whitelist_file``, the rule's input, or the config
    value) — that file, for the configured chemistry."""
    if whitelist == "none" and whitelist_file is None:
        return {}
    if whitelist == "kit" and whitelist_file is None:
        kits = (
            [CHEMISTRIES[chemistry]]
            if chemistry != "auto"
            else [c for c in CHEMISTRIES.values() if c.strand == "forward"]
        )
        return {c.whitelist: packaged_whitelist(c) for c in kits}
    if chemistry == "auto":
        raise ValueError("rna.chemistry 'auto' needs rna.whitelist 'kit': name the chemistry")
    return {CHEMISTRIES[chemistry].whitelist: Path(whitelist_file or whitelist)}


def whitelist_array(path: str | Path, length: int = 16) -> np.ndarray:
    """A barcode whitelist as 10x ships it (one barcode per line, plain or gzip; a second
    column, e.g. the v3 feature-barcode translation, ignored) as a bytes array
    (``S<length>``), without a Python object per barcode (10x's v3 list holds 6.8M).

    Raises
    ------
    ValueError
        The file lists no barcode, or barcodes other than ``length`` bases long.
    """
    path = Path(path)
    opener = gzip.open if is_gzip(path) else open
    with opener(path, "rb") as fh:
        data = fh.read()
    rows = np.frombuffer(data, dtype=np.uint8)
    if len(rows) and len(rows) % (length + 1) == 0 and (rows[length :: length + 1] == 10).all():
        return rows.reshape(-1, length + 1)[:, :length].copy().view(f"S{length}").ravel()
    listed = [line.split()[0] for line in data.splitlines() if line.strip()]
    if not listed:
        raise ValueError(f"barcode whitelist {path} is empty")
    lengths = sorted({len(b) for b in listed})
    if lengths != [length]:
        raise ValueError(
            f"barcode whitelist {path}: barcodes of {lengths} bases, expected {length}"
        )
    return np.array(listed, dtype=f"S{length}")


def whitelist_fractions(
    barcodes: Iterable[bytes], whitelists: Mapping[str, str | Path], length: int = 16
) -> dict[str, float]:
    """Per whitelist file (:func:`whitelist_array`), the fraction of ``barcodes`` (R1
    prefixes of ``length`` bases) in it: a binary search of the reads' distinct barcodes in
    the list, no Python set of the list."""
    query = np.array([b[:length] for b in barcodes], dtype=f"S{length}")
    if not len(query):
        return {name: 0.0 for name in whitelists}
    distinct = np.unique(query)
    out = {}
    for name, path in whitelists.items():
        listed = whitelist_array(path, length)
        pos = np.minimum(np.searchsorted(distinct, listed), len(distinct) - 1)
        present = distinct[pos][distinct[pos] == listed]
        out[name] = float(np.isin(query, present).mean())
    return out


def detect_chemistry(
    r1: list[bytes],
    whitelists: Mapping[str, str | Path],
    *,
    sample: str,
    configured: str = "auto",
) -> tuple[Chemistry, dict]:
    """The chemistry of a run from the first reads of its R1 files, and the evidence.

    Parameters
    ----------
    r1
        R1 sequences (a few thousand are enough).
    whitelists
        Barcode whitelist files by 10x name (those the config provides).
    configured
        ``auto`` or a name of :data:`CHEMISTRIES`: a named chemistry is checked against the
        reads (R1 long enough, its whitelist holding most barcodes when given) rather than
        detected.

    Raises
    ------
    ChemistryError
        R1 shorter than barcode + UMI, or no (the configured) whitelist holding at least
        :data:`MIN_WHITELIST_FRACTION` of the barcodes.
    """
    if not r1:
        raise ChemistryError(f"sample {sample}: R1 holds no reads")
    shortest = min(len(s) for s in r1)
    fractions = whitelist_fractions(r1, whitelists)
    evidence = {"r1_min_length": shortest, "reads": len(r1), "whitelist_fraction": fractions}
    if configured != "auto":
        if configured not in CHEMISTRIES:
            raise ChemistryError(
                f"sample {sample}: unknown chemistry '{configured}' "
                f"({', '.join(['auto', *CHEMISTRIES])})"
            )
        candidates = [CHEMISTRIES[configured]]
    else:  # 5′ needs naming: its R1 and whitelist are the 3′ v2 kit's
        candidates = [c for c in CHEMISTRIES.values() if c.strand == "forward"]
    fits = [c for c in candidates if c.r1_length <= shortest]
    if not fits:
        need = ", ".join(f"{c.name}: {c.r1_length}" for c in candidates)
        raise ChemistryError(
            f"sample {sample}: R1 reads are {shortest} bases, shorter than barcode + UMI "
            f"({need}): are R1 and R2 swapped, or the reads trimmed?"
        )
    scored = [(fractions.get(c.whitelist), c) for c in fits]
    if configured != "auto" and scored[0][0] is None:  # no whitelist to check it against
        evidence["chosen_by"] = "configured (no whitelist given to check it)"
        return fits[0], evidence
    scored = [(f, c) for f, c in scored if f is not None]
    if not scored:
        raise ChemistryError(
            f"sample {sample}: rna.chemistry 'auto' needs the barcode whitelists "
            f"(rna.whitelists) of {', '.join(sorted({c.whitelist for c in fits}))}"
        )
    best, chosen = max(scored, key=lambda fc: (fc[0], -fc[1].umi))
    if best < MIN_WHITELIST_FRACTION:
        found = ", ".join(f"{c.name} {f:.1%}" for f, c in scored)
        raise ChemistryError(
            f"sample {sample}: the reads' barcodes are not those of "
            f"{'the configured chemistry' if configured != 'auto' else 'any known chemistry'} "
            f"(barcodes in the whitelist: {found}; at least "
            f"{MIN_WHITELIST_FRACTION:.0%} expected)"
        )
    evidence["chosen_by"] = "whitelist" if configured == "auto" else "configured, checked"
    return chosen, evidence
