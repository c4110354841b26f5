"""Simulated raw reads: a small genome (FASTA + GTF) and 10x FASTQ files drawn from a count
matrix, so the FASTQ → counts path can be run and checked against a known truth.

* :func:`write_genome`: one transcript per gene (1–3 exons, introns between them) on a few
  chromosomes of random sequence, both strands; the GTF has ``gene``, ``transcript`` and
  ``exon`` lines with ``gene_id`` / ``gene_name`` / ``transcript_id`` as in Ensembl's and
  10x's references.
* :func:`write_fastq`: every UMI of a cells × genes count matrix becomes one molecule with a
  random UMI; each molecule is read ``1 + Poisson(reads_per_umi - 1)`` times (PCR
  duplicates, so sequencing saturation is known); R1 = barcode + UMI (+ poly-T to the
  chemistry's length), R2 = ``read_length`` bases of the transcript near its 3′ end (sense;
  5′ kits: near the 5′ end, antisense). Substitution errors at ``error_rate`` per base in
  both reads (quality ``,`` = Q11 where an error was made, ``F`` = Q37 elsewhere). A fraction
  ``intronic`` of molecules is drawn from the unspliced pre-mRNA (single-nucleus-like).

The truth — molecules per cell and gene — is the input matrix itself: a quantifier that
corrects barcodes and collapses UMIs as Cell Ranger does should return it.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

_ACGT = np.frombuffer(b"ACGT", dtype=np.uint8)
_COMPLEMENT = np.zeros(256, dtype=np.uint8)
_COMPLEMENT[list(b"ACGTN")] = list(b"TGCAN")


@dataclass(frozen=True)
class Genome:
    """A simulated genome: per gene its chromosome, strand, exons and sequences."""

    genes: pd.DataFrame  # gene_id, gene_name, chrom, strand, start, end (1-based, inclusive)
    exons: dict[str, list[tuple[int, int]]]  # gene_id → exons (1-based, inclusive, ascending)
    chromosomes: dict[str, bytes]

    def transcript(self, gene_id: str, *, unspliced: bool = False) -> np.ndarray:
        """The gene's RNA (sense, 5′→3′) as ASCII codes; ``unspliced``: the pre-mRNA."""
        g = self.genes.loc[gene_id]
        seq = self.chromosomes[g.chrom]
        ex = self.exons[gene_id]
        if unspliced:
            parts = [seq[ex[0][0] - 1 : ex[-1][1]]]
        else:
            parts = [seq[s - 1 : e] for s, e in ex]
        rna = np.frombuffer(b"".join(parts), dtype=np.uint8)
        return reverse_complement(rna) if g.strand == "-" else rna


def reverse_complement(seq: np.ndarray) -> np.ndarray:
    """The reverse complement of ASCII-coded bases (any leading axes: rows of reads)."""
    return _COMPLEMENT[seq[..., ::-1]]


def write_genome(
    gene_names: Sequence[str],
    fasta: str | Path,
    gtf: str | Path,
    *,
    n_chromosomes: int = 2,
    seed: int = 0,
) -> Genome:
    """Write a genome of one transcript per gene (``gene_names`` in order) to ``fasta`` and
    ``gtf`` and return it. Gene ids are ``ENSGSIM<8 digits>`` as in
    :func:`immunoprofiler.datasets.simulate_pbmc`'s ``var['gene_ids']``."""
    rng = np.random.default_rng(seed)
    chrom_names = [f"chr{i + 1}" for i in range(n_chromosomes)]
    pieces: dict[str, list[np.ndarray]] = {c: [] for c in chrom_names}
    length = dict.fromkeys(chrom_names, 0)
    rows, exons, lines = [], {}, []

    def grow(chrom: str, n: int) -> int:
        pieces[chrom].append(_ACGT[rng.choice(4, size=n, p=[0.28, 0.22, 0.22, 0.28])])
        length[chrom] += n
        return length[chrom]

    for i, name in enumerate(gene_names):
        gid = f"ENSGSIM{i:08d}"
        chrom = chrom_names[i % n_chromosomes]
        strand = "+" if rng.random() < 0.5 else "-"
        grow(chrom, int(rng.integers(300, 1500)))  # intergenic
        start = length[chrom] + 1
        ex = []
        n_exons = int(rng.integers(1, 4))
        for k in range(n_exons):
            if k:
                grow(chrom, int(rng.integers(200, 1500)))  # intron
            s = length[chrom] + 1
            ex.append((s, grow(chrom, int(rng.integers(600, 1200)) // n_exons + 150)))
        end = ex[-1][1]
        exons[gid] = ex
        rows.append((gid, name, chrom, strand, start, end))
        attrs = f'gene_id "{gid}"; gene_name "{name}"; gene_biotype "protein_coding";'
        tid = gid.replace("ENSG", "ENST")
        lines.append(f"{chrom}\tsim\tgene\t{start}\t{end}\t.\t{strand}\t.\t{attrs}")
        t_attrs = f'{attrs} transcript_id "{tid}"; transcript_name "{name}-201";'
        lines.append(f"{chrom}\tsim\ttranscript\t{start}\t{end}\t.\t{strand}\t.\t{t_attrs}")
        order = ex if strand == "+" else ex[::-1]
        for k, (s, e) in enumerate(order, start=1):
            lines.append(
                f'{chrom}\tsim\texon\t{s}\t{e}\t.\t{strand}\t.\t{t_attrs} exon_number "{k}";'
            )
    for c in chrom_names:
        grow(c, 1000)
    chromosomes = {c: np.concatenate(pieces[c]).tobytes() for c in chrom_names}
    with open(fasta, "w") as fh:
        for c, seq in chromosomes.items():
            fh.write(f">{c}\n")
            for j in range(0, len(seq), 60):
                fh.write(seq[j : j + 60].decode() + "\n")
    Path(gtf).write_text("\n".join(lines) + "\n")
    genes = pd.DataFrame(
        rows, columns=["gene_id", "gene_name", "chrom", "strand", "start", "end"]
    ).set_index("gene_id", drop=False)
    return Genome(genes, exons, chromosomes)


def simulated_whitelist(n: int, seed: int = 0, length: int = 16) -> list[str]:
    """``n`` distinct random barcodes, sorted (as dense as a real whitelist allows: two may
    be one substitution apart, as in 10x's)."""
    rng = np.random.default_rng([seed, length])
    out: set[bytes] = set()
    while len(out) < n:
        out.update(r.tobytes() for r in _ACGT[rng.integers(0, 4, size=(n, length))])
    return sorted(b.decode() for b in out)[:n]


def write_fastq(
    counts: sp.spmatrix,
    barcodes: Sequence[str],
    genome: Genome,
    gene_ids: Sequence[str],
    r1: str | Path,
    r2: str | Path,
    *,
    umi_length: int = 12,
    r1_length: int = 28,
    read_length: int = 90,
    reads_per_umi: float = 2.0,
    error_rate: float = 0.001,
    intronic: float = 0.0,
    five_prime: bool = False,
    window: int = 400,
    seed: int = 0,
    chunk: int = 500_000,
) -> dict[str, int]:
    """Write the reads of ``counts`` (barcodes × genes, UMIs) to gzip FASTQ files ``r1`` and
    ``r2`` (shuffled). Returns the numbers of molecules, reads and reads with an error in
    the barcode or the UMI."""
    rng = np.random.default_rng([seed, 7])
    X = sp.coo_matrix(counts)
    n = np.asarray(X.data).astype(np.int64)
    cell = np.repeat(X.row, n)
    gene = np.repeat(X.col, n)
    n_mol = len(cell)
    umis = rng.integers(0, 4, size=(n_mol, umi_length), dtype=np.uint8)
    reads_of = 1 + rng.poisson(max(reads_per_umi - 1.0, 0.0), size=n_mol)
    mol = rng.permutation(np.repeat(np.arange(n_mol), reads_of))
    bc = np.frombuffer("".join(b[:16] for b in barcodes).encode(), dtype=np.uint8).reshape(-1, 16)
    unspliced_of = rng.random(n_mol) < intronic
    # every gene's RNA, spliced (column 0) and unspliced (1), in one buffer
    rnas = [genome.transcript(g, unspliced=u) for g in gene_ids for u in (False, True)]
    rna_len = np.array([len(r) for r in rnas], dtype=np.int64).reshape(-1, 2)
    if rna_len.min() < read_length:
        raise ValueError(f"a transcript is shorter than read_length={read_length}")
    offset = np.r_[0, np.cumsum(rna_len.ravel())[:-1]].reshape(-1, 2)
    rna_buf = np.concatenate(rnas)
    stats = {"molecules": n_mol, "reads": len(mol), "barcode_errors": 0, "umi_errors": 0}
    q_ok, q_err = ord("F"), ord(",")
    header_width = len(str(len(mol)))
    with _gzip(r1) as f1, _gzip(r2) as f2:
        for lo in range(0, len(mol), chunk):
            m = mol[lo : lo + chunk]
            k = len(m)
            # R1: barcode, UMI, poly-T
            s1 = np.full((k, r1_length), ord("T"), dtype=np.uint8)
            s1[:, :16] = bc[cell[m]]
            s1[:, 16 : 16 + umi_length] = _ACGT[umis[m]]
            e1 = rng.random((k, r1_length)) < error_rate
            stats["barcode_errors"] += int(e1[:, :16].any(axis=1).sum())
            stats["umi_errors"] += int(e1[:, 16 : 16 + umi_length].any(axis=1).sum())
            # R2: cDNA, ``read_length`` bases from a start drawn per read
            g, u = gene[m], unspliced_of[m]
            off, span = offset[g, u.astype(int)], rna_len[g, u.astype(int)]
            top = span - read_length
            lo_start = np.where(u | five_prime, 0, np.maximum(0, top - window))
            hi_start = np.where(u | (not five_prime), top, np.minimum(window, top))
            start = lo_start + (rng.random(k) * (hi_start - lo_start + 1)).astype(np.int64)
            s2 = rna_buf[(off + start)[:, None] + np.arange(read_length)]
            if five_prime:
                s2 = reverse_complement(s2)
            e2 = rng.random((k, read_length)) < error_rate
            for s, e, fh, width in ((s1, e1, f1, r1_length), (s2, e2, f2, read_length)):
                _mutate(s, e, rng)
                q = np.where(e, q_err, q_ok).astype(np.uint8)
                fh.write(_records(s, q, lo, header_width, width))
    return stats


@contextmanager
def _gzip(path: str | Path) -> Iterator[gzip.GzipFile]:
    """A gzip writer whose bytes depend only on what is written (no time, no file name)."""
    with open(path, "wb") as raw, gzip.GzipFile("", "wb", 1, raw, mtime=0) as fh:
        yield fh


def _mutate(seq: np.ndarray, where: np.ndarray, rng: np.random.Generator) -> None:
    """Substitute a different base at ``where`` (in place)."""
    idx = np.nonzero(where)
    if not len(idx[0]):
        return
    cur = np.searchsorted(_ACGT, seq[idx])
    seq[idx] = _ACGT[(cur + rng.integers(1, 4, size=len(cur))) % 4]


def _records(seq: np.ndarray, qual: np.ndarray, first: int, width: int, length: int) -> bytes:
    """FASTQ records of fixed-length reads named ``@r<number>`` (zero-padded), in one
    buffer."""
    k = seq.shape[0]
    names = np.char.zfill(np.arange(first, first + k).astype(str), width).astype(f"S{width}")
    head = np.frombuffer(names.tobytes(), dtype=np.uint8).reshape(k, width)
    rec = np.empty((k, 1 + width + 1 + length + 3 + length + 1), dtype=np.uint8)
    c = 0
    for part in (
        np.full((k, 1), ord("@")),
        head,
        np.full((k, 1), ord("\n")),
        seq,
        np.tile(np.frombuffer(b"\n+\n", dtype=np.uint8), (k, 1)),
        qual,
        np.full((k, 1), ord("\n")),
    ):
        rec[:, c : c + part.shape[1]] = part
        c += part.shape[1]
    return rec.tobytes()
