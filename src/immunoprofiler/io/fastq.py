"""10x FASTQ inputs: a sample's read pairs, found and checked before anything is counted.

A sample sheet's RNA row gives its reads one of two ways:

* ``path`` is a folder of FASTQ files named as bcl2fastq and BCL Convert name them,
  ``<name>_S<n>_L<lane>_R1_001.fastq.gz`` with its ``R2`` mate (``_L<lane>`` absent when the
  lanes were merged). Every pair below the folder is the sample's — several lanes and several
  sequencing runs (sub-folders) of one library are merged; index reads (``I1``/``I2``) are
  ignored. A folder that holds several libraries' files is narrowed to those named after
  the sample.
* ``fastq_1`` / ``fastq_2`` columns list the R1 and R2 files, comma-separated, in the same
  order.

R1 carries the cell barcode and UMI, R2 the cDNA. A missing mate, lists of different
lengths, an empty file or one that is not gzip-compressed is a :class:`FastqError` naming
the sample, the file and the problem; a truncated file is found when it is read
(:func:`check_gzip_stream`).
"""

from __future__ import annotations

import gzip
import re
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..failures import SampleError

#: bcl2fastq / BCL Convert file names: sample name, sample number, lane (optional), read, chunk
FASTQ_NAME = re.compile(
    r"^(?P<name>.+?)_S(?P<number>\d+)(?:_L(?P<lane>\d{3}))?_(?P<read>[RI][12])_(?P<chunk>\d{3})"
    r"\.f(?:ast)?q\.gz$"
)


class FastqError(SampleError):
    """A sample's FASTQ files are missing, unpaired or unreadable."""


@dataclass(frozen=True)
class ReadPair:
    """One R1 (barcode + UMI) / R2 (cDNA) file pair of a sample."""

    r1: Path
    r2: Path
    lane: str = ""  # "L001"; "" when not named by lane
    run: str = ""  # the sub-folder the pair came from ("" for the sample's folder itself)


def parse_fastq_name(name: str) -> dict[str, str] | None:
    """The parts of a bcl2fastq / BCL Convert FASTQ file name, or None.

    Examples
    --------
    >>> parse_fastq_name("P1_pre_S3_L002_R1_001.fastq.gz")["lane"]
    '002'
    >>> parse_fastq_name("sample.fastq.gz") is None
    True
    """
    m = FASTQ_NAME.match(name)
    return m.groupdict(default="") if m else None


def find_read_pairs(folder: str | Path, sample: str) -> list[ReadPair]:
    """Every R1/R2 pair of ``sample`` below ``folder`` (lanes and runs), sorted by run, lane
    and chunk. Files of other libraries in the folder are left out when some are named
    after ``sample``; a folder of several libraries none named after it is an error."""
    folder = Path(folder)
    found: dict[tuple[str, str, str, str, str], dict[str, Path]] = {}
    names: set[str] = set()
    for p in sorted(folder.rglob("*")):
        parts = parse_fastq_name(p.name)
        if parts is None or not p.is_file() or parts["read"].startswith("I"):
            continue
        rel = p.parent.relative_to(folder)
        run = "" if rel == Path(".") else rel.as_posix()
        key = (run, parts["name"], parts["number"], parts["lane"], parts["chunk"])
        found.setdefault(key, {})[parts["read"]] = p
        names.add(parts["name"])
    if not found:
        raise FastqError(
            f"sample {sample}: {folder} holds no 10x FASTQ files "
            "(<name>_S<n>_L<lane>_R1_001.fastq.gz and its R2)"
        )
    if len(names) > 1:
        if sample not in names:
            raise FastqError(
                f"sample {sample}: {folder} holds the FASTQ files of several libraries "
                f"({', '.join(sorted(names))}) and none is named after the sample: point "
                "'path' at one library's folder or list its files in fastq_1 / fastq_2"
            )
        found = {k: v for k, v in found.items() if k[1] == sample}
    pairs = []
    for (run, *_, lane, _), reads in sorted(found.items()):
        for have, want in (("R1", "R2"), ("R2", "R1")):
            if want not in reads:
                mate = reads[have].name.replace(f"_{have}_", f"_{want}_")
                raise FastqError(
                    f"sample {sample}: {reads[have]} has no {want} mate "
                    f"(expected {reads[have].with_name(mate)})"
                )
        pairs.append(ReadPair(reads["R1"], reads["R2"], f"L{lane}" if lane else "", run))
    return pairs


def read_pairs_from_lists(
    fastq_1: str, fastq_2: str, sample: str, base: str | Path = "."
) -> list[ReadPair]:
    """The pairs the sheet's ``fastq_1`` / ``fastq_2`` columns list (comma-separated, paths
    relative to ``base``), paired by position."""
    r1 = [s.strip() for s in fastq_1.split(",") if s.strip()]
    r2 = [s.strip() for s in fastq_2.split(",") if s.strip()]
    if not r1 or len(r1) != len(r2):
        raise FastqError(
            f"sample {sample}: fastq_1 lists {len(r1)} file(s) and fastq_2 {len(r2)}: "
            "each R1 file needs its R2 mate, in the same order"
        )
    base = Path(base)
    return [ReadPair(base / a, base / b) for a, b in zip(r1, r2, strict=True)]


def check_read_pairs(pairs: Sequence[ReadPair], sample: str) -> None:
    """Raise :class:`FastqError` for the first file that is missing, empty or not gzip."""
    for pair in pairs:
        for path in (pair.r1, pair.r2):
            why = gzip_problem(path)
            if why:
                raise FastqError(f"sample {sample}: {path}: {why}")


def check_reads(pairs: Sequence[ReadPair], sample: str, threads: int = 1) -> None:
    """:func:`check_read_pairs`, then every file decompressed to its end
    (:func:`check_gzip_stream`, ``threads`` files at a time: zlib releases the GIL)."""
    from concurrent.futures import ThreadPoolExecutor

    check_read_pairs(pairs, sample)
    files = [p for pair in pairs for p in (pair.r1, pair.r2)]
    with ThreadPoolExecutor(max(threads, 1)) as pool:
        list(pool.map(lambda f: check_gzip_stream(f, sample), files))


def is_gzip(path: str | Path) -> bool:
    """True if the file ``path`` starts with the gzip magic bytes (gzip, BGZF: BAM too)."""
    with open(path, "rb") as fh:
        return fh.read(2) == b"\x1f\x8b"


def gzip_problem(path: str | Path) -> str | None:
    """Why ``path`` cannot be a gzip-compressed FASTQ (missing, empty, not gzip), or None.

    Examples
    --------
    >>> gzip_problem("/nonexistent.fastq.gz")
    'file does not exist'
    """
    p = Path(path)
    if not p.is_file():
        return "file does not exist"
    if p.stat().st_size == 0:
        return "file is empty"
    if not is_gzip(p):
        return "not gzip-compressed (a .fastq.gz file must start with the gzip magic bytes)"
    return None


def check_gzip_stream(path: str | Path, sample: str, chunk: int = 1 << 20) -> int:
    """Decompress ``path`` to its end (multi-member files included, as BCL Convert writes
    them) and return its uncompressed size; a truncated or corrupt file is a
    :class:`FastqError` saying where it stops."""
    size = 0
    try:
        with gzip.open(path, "rb") as fh:
            while block := fh.read(chunk):
                size += len(block)
    except (EOFError, OSError, zlib.error) as err:
        raise FastqError(
            f"sample {sample}: {path}: truncated or corrupt gzip after {size:,} bytes "
            f"decompressed ({err})"
        ) from err
    if size == 0:
        raise FastqError(f"sample {sample}: {path}: holds no reads")
    return size


def iter_records(
    path: str | Path, sample: str, limit: int | None = None
) -> Iterator[tuple[bytes, bytes]]:
    """The sequence and quality lines of the first ``limit`` (all: None) FASTQ records of
    ``path``; a record that is not four lines starting ``@`` … ``+`` is a
    :class:`FastqError` naming the record."""
    n = 0
    try:
        with gzip.open(path, "rb") as fh:
            while limit is None or n < limit:
                head = fh.readline()
                if not head:
                    return
                seq, plus, qual = fh.readline(), fh.readline(), fh.readline()
                if not head.startswith(b"@") or not plus.startswith(b"+") or not qual:
                    raise FastqError(
                        f"sample {sample}: {path}: record {n + 1} is not a FASTQ record "
                        f"(starts {head[:40]!r})"
                    )
                n += 1
                yield seq.rstrip(b"\r\n"), qual.rstrip(b"\r\n")
    except (EOFError, OSError, zlib.error) as err:
        raise FastqError(
            f"sample {sample}: {path}: truncated or corrupt gzip after {n:,} records ({err})"
        ) from err


def q30_fractions(
    pairs: Sequence[ReadPair], barcode: int, umi: int, sample: str, limit: int = 1_000_000
) -> dict[str, float]:
    """Fractions of bases with Phred quality ≥ 30 in the barcode, the UMI (R1) and the cDNA
    read (R2) — Cell Ranger's ``Q30 Bases in …`` — over the first ``limit`` read pairs,
    taken evenly from each pair of files (Phred+33)."""
    per_pair = max(limit // max(len(pairs), 1), 1)
    q1: list[bytes] = []
    q2: list[bytes] = []
    for pair in pairs:
        q1 += [q[: barcode + umi] for _, q in iter_records(pair.r1, sample, per_pair)]
        q2 += [q for _, q in iter_records(pair.r2, sample, per_pair)]
    if not q1:
        raise FastqError(f"sample {sample}: {pairs[0].r1}: holds no reads")
    r1 = np.frombuffer(b"".join(q.ljust(barcode + umi, b"!") for q in q1), dtype=np.uint8)
    r1 = r1.reshape(len(q1), barcode + umi) >= 33 + 30
    r2 = np.frombuffer(b"".join(q2), dtype=np.uint8) >= 33 + 30
    return {
        "q30_barcode": round(float(r1[:, :barcode].mean()), 4),
        "q30_umi": round(float(r1[:, barcode:].mean()), 4),
        "q30_rna": round(float(r2.mean()), 4) if len(r2) else 0.0,
    }
