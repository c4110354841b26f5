"""A genome reference for counting reads: FASTA + GTF, checked before an index is built.

Gene ids and symbols come from the GTF's ``gene_id`` and ``gene_name`` attributes, as in
10x's references (a gene without ``gene_name`` is an error: the chain's annotation works
on symbols). The GTF's chromosomes must be sequences of the FASTA (``chr1`` vs ``1`` is
the usual mismatch, named in the error).
"""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import pandas as pd

from ..failures import SampleError

_ATTR = re.compile(r'(\S+) "([^"]*)"')


class ReferenceError(SampleError):
    """The reference (FASTA, GTF or index) cannot be used."""


def _open_text(path: Path):
    from .fastq import is_gzip

    return gzip.open(path, "rt") if is_gzip(path) else open(path)


def fasta_sequences(fasta: str | Path) -> list[str]:
    """The sequence names of a FASTA file (the first word of each ``>`` line)."""
    fasta = Path(fasta)
    with _open_text(fasta) as fh:
        names = [line[1:].split()[0] for line in fh if line.startswith(">") and line[1:].strip()]
    if not names:
        raise ReferenceError(f"reference FASTA {fasta}: no sequences ('>' lines)")
    return names


def gtf_genes(gtf: str | Path) -> pd.DataFrame:
    """One row per gene of a GTF — ``gene_id``, ``gene_name``, ``chrom`` — in file order,
    from its ``exon`` lines (the lines every quantifier counts on).

    Raises
    ------
    ReferenceError
        No exon lines, or exons without ``gene_id`` / ``gene_name`` (the first named).
    """
    gtf = Path(gtf)
    rows: dict[str, tuple[str, str]] = {}
    with _open_text(gtf) as fh:
        for n, line in enumerate(fh, start=1):
            if line.startswith("#"):
                continue
            f = line.rstrip("\n").split("\t")
            if len(f) < 9 or f[2] != "exon":
                continue
            attrs = dict(_ATTR.findall(f[8]))
            gid = attrs.get("gene_id")
            if gid is None:
                raise ReferenceError(f"GTF {gtf} line {n}: an exon without gene_id")
            if "gene_name" not in attrs:
                raise ReferenceError(
                    f"GTF {gtf} line {n}: exon of {gid} has no gene_name attribute "
                    "(gene symbols come from gene_name, as in 10x's references: use a GTF "
                    "that has it, e.g. Ensembl's or GENCODE's)"
                )
            rows.setdefault(gid, (attrs["gene_name"], f[0]))
    if not rows:
        raise ReferenceError(f"GTF {gtf} has no exon lines")
    return pd.DataFrame(
        [(g, name, chrom) for g, (name, chrom) in rows.items()],
        columns=["gene_id", "gene_name", "chrom"],
    )


def check_reference(fasta: str | Path, gtf: str | Path) -> pd.DataFrame:
    """The GTF's genes, after checking that their chromosomes are sequences of the FASTA."""
    genes = gtf_genes(gtf)
    seqs = set(fasta_sequences(fasta))
    missing = sorted(set(genes["chrom"]) - seqs)
    if missing:
        share = genes["chrom"].isin(missing).mean()
        hint = ""
        if any(("chr" + m) in seqs or m.removeprefix("chr") in seqs for m in missing):
            hint = " (the files name chromosomes differently: 'chr1' in one, '1' in the other)"
        raise ReferenceError(
            f"GTF {gtf} names chromosomes absent from FASTA {fasta}: "
            f"{', '.join(missing[:5])}{' …' if len(missing) > 5 else ''} "
            f"({share:.0%} of genes){hint}"
        )
    return genes
