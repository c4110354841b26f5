"""How much memory reading one scRNA-seq sample takes, known before reading it.

A job's memory request has to be set before the job runs, from what its input says about
itself. File size is a poor guide for counts: the same matrix takes ~4× less disk as a
gzipped Matrix Market file than as a plain one, a 10x folder's size on disk is not its
contents' size, and an ``.h5ad`` may hold other layers besides the counts. The number of
stored entries (non-zeros; every value of a dense matrix) is in each format's header or
HDF5 metadata, and the reader's peak memory is proportional to it.

Only ``gzip`` and (when called) ``h5py`` are imported: Snakemake evaluates this while it
schedules jobs.
"""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import BinaryIO

# Peak memory of `rna_ingest` per stored entry above the process's base, by reader, and
# the base (Python with anndata and scanpy imported, a 200-cell sample), measured by
# bench/ingest_bench.py (bench/results/ingest_20k_2cores.json).
# Measured at 20,000 cells (27.3M entries): 10x .h5 24.6, Matrix Market 47.4 (gzipped or
# not: the text is parsed into float64 triplets), .h5ad 24.5, dense .h5ad 5.7 per value;
# base 249-339 MB.
READ_BYTES_PER_ENTRY = {"mtx": 48.0, "h5": 25.0, "h5ad": 25.0, "h5ad_dense": 6.0}
READ_BASE_MB = 350.0


def stored_entries(path: str | Path) -> tuple[str, int]:
    """The reader that ``path`` needs (``"mtx"``, ``"h5"``, ``"h5ad"``, or ``"h5ad_dense"``
    for a dense matrix) and the stored entries of the count matrix it reads (non-zeros;
    every value of a dense one), from the file's header or HDF5 metadata only.

    A 10x folder: its ``matrix.mtx[.gz]`` (the largest, if there are several genomes'
    folders below it); a 10x ``.h5``: the ``matrix`` group or the legacy genome groups'
    largest; an ``.h5ad``: ``layers/counts``, else ``X`` (the only matrix
    :func:`~immunoprofiler.io.tenx.read_counts_h5ad` reads). Raises ``OSError``,
    ``KeyError`` or ``ValueError`` for a file that is none of these (the reading job then
    reports it, naming the sample).
    """
    path = Path(path)
    if path.is_dir():
        found = sorted(path.rglob("matrix.mtx")) + sorted(path.rglob("matrix.mtx.gz"))
        if not found:
            raise FileNotFoundError(f"{path}: no matrix.mtx[.gz] below this folder")
        return "mtx", max(_mtx_entries(p) for p in found)
    import h5py

    with h5py.File(path, "r") as f:
        if path.suffix == ".h5":
            groups = (
                [f["matrix"]]
                if "matrix" in f
                else [g for g in f.values() if isinstance(g, h5py.Group) and "data" in g]
            )
            return "h5", max(g["data"].shape[0] for g in groups)
        node = f["layers/counts"] if "layers/counts" in f else f["X"]
        if isinstance(node, h5py.Dataset):
            return "h5ad_dense", int(node.size)
        return "h5ad", node["data"].shape[0]


def open_mtx(path: Path) -> BinaryIO:
    """A Matrix Market file, gzipped or plain, open for reading bytes."""
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def mtx_size(fh: BinaryIO) -> tuple[int, int, int]:
    """Rows, columns and entries from the size line of a Matrix Market file whose banner
    has been read (comment lines skipped); ``fh`` is left at the first entry."""
    line = fh.readline()
    while line.startswith(b"%"):
        line = fh.readline()
    n_rows, n_cols, entries = (int(x) for x in line.split())
    return n_rows, n_cols, entries


def _mtx_entries(path: Path) -> int:
    with open_mtx(path) as fh:
        fh.readline()  # the banner
        return mtx_size(fh)[2]


def read_memory_mb(path: str | Path, headroom: float = 1.25) -> float:
    """MB a process running ``rna_ingest`` on ``path`` will need: the measured base plus
    the reader's bytes per stored entry, times ``headroom``."""
    reader, entries = stored_entries(path)
    return headroom * (READ_BASE_MB + READ_BYTES_PER_ENTRY[reader] * entries / 2**20)
