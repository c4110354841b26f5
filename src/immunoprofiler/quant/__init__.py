"""FASTQ → counts: two quantifiers behind one interface.

* ``kallisto`` (:mod:`.kallisto`): kallisto | bustools through kb-python, which pip installs
  with both binaries and 10x's barcode whitelists — the default, nothing else to install.
* ``starsolo`` (:mod:`.starsolo`): STAR's solo mode (genome alignment, Cell Ranger-like
  barcode and UMI correction), when STAR ≥ 2.7.10 is on the PATH.

Each builds an index from a FASTA + GTF (:func:`build_index`) and turns one sample's read
pairs into a raw (every barcode) count matrix with Cell Ranger's ``metrics_summary``-like
read statistics (:func:`quantify`). Cells are called afterwards, by the project's own methods
(:mod:`immunoprofiler.pp.cellcalling`), whichever tool counted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..io.chemistry import Chemistry
from ..io.fastq import ReadPair

Quantifier = Literal["kallisto", "starsolo"]
Features = Literal["gene", "gene_full"]
QUANTIFIERS: tuple[str, ...] = ("kallisto", "starsolo")
#: the reference's gene table, written beside every index (gene_id, gene_name, chrom)
GENES_TSV = "genes.tsv"


@dataclass
class RawCounts:
    """One sample's raw counts: ``X`` barcodes × genes (UMIs, int32 CSR), the barcodes (no
    ``-1`` suffix), the genes (ids, in the reference's order) and the read statistics."""

    X: sp.csr_matrix
    barcodes: list[str]
    gene_ids: list[str]
    stats: dict[str, Any] = field(default_factory=dict)

    def to_anndata(self, index: str | Path):
        """The barcodes seen (``-1`` suffixed, as Cell Ranger names them) × the reference's
        genes (symbols from the index's :data:`GENES_TSV`, ids in ``var['gene_ids']``)."""
        import anndata as ad

        genes = pd.read_csv(Path(index) / GENES_TSV, sep="\t", dtype=str)
        var = pd.DataFrame(
            {"gene_ids": genes["gene_id"].to_numpy()}, index=pd.Index(genes["gene_name"])
        )
        seen = np.asarray(self.X.sum(axis=1)).ravel() > 0
        names = [f"{b}-1" for b in np.asarray(self.barcodes)[seen]]
        return ad.AnnData(X=self.X[seen], obs=pd.DataFrame(index=names), var=var)


def build_index(
    quantifier: Quantifier,
    fasta: str | Path,
    gtf: str | Path,
    outdir: str | Path,
    *,
    features: Features = "gene",
    threads: int = 1,
    memory_mb: int = 4000,
) -> pd.DataFrame:
    """Check the reference, build ``quantifier``'s index in ``outdir`` and write the gene
    table (:data:`GENES_TSV`) beside it; returns the gene table."""
    from ..io.reference import check_reference

    genes = check_reference(fasta, gtf)
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    if quantifier == "kallisto":
        from .kallisto import build_index as build
    else:
        from .starsolo import build_index as build
    build(fasta, gtf, outdir, features=features, threads=threads, memory_mb=memory_mb)
    genes.to_csv(outdir / GENES_TSV, sep="\t", index=False)
    return genes


def quantify(
    quantifier: Quantifier,
    pairs: Sequence[ReadPair],
    index: str | Path,
    workdir: str | Path,
    *,
    chemistry: Chemistry,
    whitelist: str | Path | None,
    features: Features = "gene",
    threads: int = 1,
    memory_mb: int = 4000,
    bam: str | Path | None = None,
) -> RawCounts:
    """Count ``pairs`` against the index in ``index`` (working files in ``workdir``);
    genes in the reference's order, those never seen with zero counts. ``bam``: where
    STARsolo writes its tagged BAM (kallisto writes none)."""
    if quantifier == "kallisto":
        from .kallisto import count
    else:
        from .starsolo import count
    raw = count(
        pairs,
        Path(index),
        Path(workdir),
        chemistry=chemistry,
        whitelist=whitelist,
        features=features,
        threads=threads,
        memory_mb=memory_mb,
        bam=bam,
    )
    genes = pd.read_csv(Path(index) / GENES_TSV, sep="\t")["gene_id"].astype(str)
    return _in_reference_order(raw, list(genes))


def _in_reference_order(raw: RawCounts, genes: list[str]) -> RawCounts:
    """``raw`` with its columns reordered to ``genes`` (genes it lacks: zero columns)."""
    unknown = sorted(set(raw.gene_ids) - set(genes))
    if unknown:
        raise ValueError(f"the counts name genes absent from the reference: {unknown[:5]}")
    pos = pd.Index(raw.gene_ids).get_indexer(genes)
    have = np.flatnonzero(pos >= 0)
    select = sp.csr_matrix(
        (np.ones(len(have), dtype=np.int32), (pos[have], have)),
        shape=(len(raw.gene_ids), len(genes)),
    )
    return RawCounts((raw.X @ select).astype(np.int32).tocsr(), raw.barcodes, genes, raw.stats)


def run_tool(cmd: list[str], log: Path, *expected: Path) -> None:
    """Run ``cmd`` with its output in ``log``; a non-zero exit, or an ``expected`` file it did
    not write, raises with the log's last lines (kb-python can exit 0 having failed)."""
    import subprocess

    with open(log, "w") as fh:
        done = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, check=False)
    missing = [str(p) for p in expected if not Path(p).exists()]
    if done.returncode or missing:
        tail = "\n".join(log.read_text().strip().splitlines()[-15:])
        why = f"exit {done.returncode}" if done.returncode else f"{', '.join(missing)} not written"
        raise RuntimeError(
            f"{Path(cmd[0]).name} {cmd[1]} failed ({why}); last lines of {log}:\n{tail}"
        )


def plain_copy(path: str | Path, outdir: Path) -> Path:
    """``path`` itself, or its decompressed copy in ``outdir`` when gzip-compressed (STAR and
    bustools read plain text)."""
    import gzip
    import shutil

    from ..io.fastq import is_gzip

    path = Path(path)
    if not is_gzip(path):
        return path
    out = outdir / path.name.removesuffix(".gz")
    with gzip.open(path, "rb") as src, open(out, "wb") as dst:
        shutil.copyfileobj(src, dst)
    return out


def read_mtx(path: str | Path, *, transpose: bool = False) -> sp.csr_matrix:
    """A Matrix Market file as int32 CSR (``transpose``: genes × barcodes on disk)."""
    from scipy.io import mmread

    X = sp.csr_matrix(mmread(str(path)))
    return (X.T.tocsr() if transpose else X).astype(np.int32)
