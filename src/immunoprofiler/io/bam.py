"""Aligned 10x-style BAM → UMI-deduplicated (cell, gene) counts, streamed with pysam.

Reads are counted as Cell Ranger counts them: mapped, primary (not secondary or
supplementary), optionally not duplicate-flagged, MAPQ ≥ ``min_mapq`` (255 = STAR
unique), with a cell barcode, a UMI and exactly one gene. No index is needed: the file is
read start to end, in any sort order. Each counted read becomes one 64-bit key
``cell | gene | UMI`` appended to a buffer that is reduced (``np.unique``) whenever it
fills, so memory is bounded by the number of distinct (cell, UMI, gene) triples, never by
the file size.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from ..failures import SampleError
from ..params import BamCountParams

logger = logging.getLogger(__name__)

UMI_BITS, GENE_BITS, CELL_BITS = 24, 17, 22  # 12-base UMIs, 131k genes, 4M barcodes
_ACGT = str.maketrans("ACGT", "0123")


class BamError(SampleError):
    """A BAM file cannot be read or lacks the tags the counting needs."""


@dataclass
class BamCounts:
    """Distinct (cell, gene, UMI) keys with their read counts, and the summary."""

    keys: np.ndarray  # uint64, sorted, unique
    reads: np.ndarray  # reads per key
    barcodes: list[str]
    gene_ids: list[str]
    gene_names: list[str]
    summary: dict[str, int] = field(default_factory=dict)


def _get(read, tag: str, fallback: str | None):
    try:
        return read.get_tag(tag)
    except KeyError:
        if fallback is None:
            return None
        try:
            return read.get_tag(fallback)
        except KeyError:
            return None


def _reduce(buf: np.ndarray, keys: np.ndarray, reads: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    u, c = np.unique(buf, return_counts=True)
    if len(keys) == 0:
        return u, c.astype(np.int64)
    allk = np.concatenate([keys, u])
    allc = np.concatenate([reads, c])
    order = np.argsort(allk, kind="stable")
    allk, allc = allk[order], allc[order]
    starts = np.flatnonzero(np.r_[True, allk[1:] != allk[:-1]])
    return allk[starts], np.add.reduceat(allc, starts)


def observed_tags(path: str | Path, n: int = 1000) -> list[str]:
    """Tags present on the first ``n`` reads (for error messages)."""
    import pysam

    seen: Counter[str] = Counter()
    with pysam.AlignmentFile(str(path), "rb", check_sq=False) as bam:
        for i, read in enumerate(bam.fetch(until_eof=True)):
            seen.update(t for t, _ in read.get_tags())
            if i >= n:
                break
    return sorted(seen)


def count_bam(
    path: str | Path, params: BamCountParams | None = None, *, threads: int = 1
) -> BamCounts:
    """Stream ``path`` and return the distinct (cell, gene, UMI) keys with read counts.

    ``summary``: ``reads_total``, ``reads_unmapped``, ``reads_secondary``, ``reads_duplicate``,
    ``reads_low_mapq``, ``reads_no_cell``, ``reads_no_umi``, ``reads_invalid_umi`` (N or
    too long), ``reads_no_gene``, ``reads_multi_gene``, ``reads_counted`` (each counted read
    falls into exactly one of these categories, in that order).
    """
    import pysam

    p = params or BamCountParams()
    path = Path(path)
    if not path.is_file():
        raise BamError(f"{path}: BAM file does not exist")
    with open(path, "rb") as fh:
        magic = fh.read(4)
    if magic[:2] != b"\x1f\x8b":
        raise BamError(f"{path}: not a BAM file (not BGZF-compressed; starts with {magic!r})")
    cells: dict[str, int] = {}
    genes: dict[str, int] = {}
    names: list[str] = []
    s = Counter()
    buf = np.empty(p.buffer_reads, dtype=np.uint64)
    n = 0
    keys = np.empty(0, dtype=np.uint64)
    reads = np.empty(0, dtype=np.int64)
    skip_flags = 0x4 | 0x100 | 0x800
    cell_tag, umi_tag = p.cell_tag, p.umi_tag
    gene_tag, other_gene_tags = p.gene_tags[0], p.gene_tags[1:]
    umi_max = UMI_BITS // 2
    try:
        bam = pysam.AlignmentFile(str(path), "rb", check_sq=False, threads=max(threads, 1))
    except (ValueError, OSError) as err:
        raise BamError(f"{path}: cannot be opened as BAM ({err})") from err
    try:
        for read in bam.fetch(until_eof=True):
            s["reads_total"] += 1
            flag = read.flag
            if flag & skip_flags:
                s["reads_unmapped" if flag & 0x4 else "reads_secondary"] += 1
                continue
            if p.skip_duplicates and flag & 0x400:
                s["reads_duplicate"] += 1
                continue
            if read.mapping_quality < p.min_mapq:
                s["reads_low_mapq"] += 1
                continue
            # the common case inline (one get_tag per tag); fallbacks only on a miss
            try:
                cb = read.get_tag(cell_tag)
            except KeyError:
                cb = _get(read, cell_tag, p.cell_fallback_tag)
                if cb is None:
                    s["reads_no_cell"] += 1
                    continue
            if cb == "-":  # STARsolo's "no valid barcode"
                s["reads_no_cell"] += 1
                continue
            try:
                umi = read.get_tag(umi_tag)
            except KeyError:
                umi = _get(read, umi_tag, p.umi_fallback_tag)
                if umi is None:
                    s["reads_no_umi"] += 1
                    continue
            if umi == "-":
                s["reads_no_umi"] += 1
                continue
            if len(umi) > umi_max or "N" in umi:
                s["reads_invalid_umi"] += 1
                continue
            try:
                gene = read.get_tag(gene_tag)
            except KeyError:
                gene = next((read.get_tag(t) for t in other_gene_tags if read.has_tag(t)), None)
                if gene is None:
                    s["reads_no_gene"] += 1
                    continue
            if gene == "-":  # STARsolo: not in a gene
                s["reads_no_gene"] += 1
                continue
            if ";" in gene:
                s["reads_multi_gene"] += 1
                continue
            c = cells.get(cb)
            if c is None:
                c = cells[cb] = len(cells)
            g = genes.get(gene)
            if g is None:
                g = genes[gene] = len(genes)
                name = next((read.get_tag(t) for t in p.gene_name_tags if read.has_tag(t)), gene)
                names.append(str(name).split(";")[0])
            buf[n] = (
                (c << (GENE_BITS + UMI_BITS))
                | (g << UMI_BITS)
                | int(umi.translate(_ACGT) or "0", 4)
            )
            n += 1
            if n == len(buf):
                keys, reads = _reduce(buf, keys, reads)
                n = 0
    except OSError as err:
        raise BamError(
            f"{path}: truncated or corrupt BAM after {s['reads_total']} reads ({err})"
        ) from err
    finally:
        bam.close()
    if len(cells) >= 1 << CELL_BITS or len(genes) >= 1 << GENE_BITS:
        raise BamError(
            f"{path}: {len(cells)} barcodes / {len(genes)} genes exceed the key capacity"
        )
    keys, reads = _reduce(buf[:n], keys, reads)
    s["reads_counted"] = int(reads.sum())
    if s["reads_total"] and not s["reads_counted"]:
        missing = [
            t
            for t in (p.cell_tag, p.umi_tag)
            if s[f"reads_no_{'cell' if t == p.cell_tag else 'umi'}"]
        ]
        if s["reads_no_cell"] or s["reads_no_umi"] or s["reads_no_gene"]:
            found = observed_tags(path)
            raise BamError(
                f"{path}: no read has all of the configured tags (cell {p.cell_tag}"
                f"{'/' + p.cell_fallback_tag if p.cell_fallback_tag else ''}, UMI {p.umi_tag}"
                f"{'/' + p.umi_fallback_tag if p.umi_fallback_tag else ''}, gene "
                f"{'/'.join(p.gene_tags)}); tags found on its reads: {found}"
                + (f" (missing: {missing})" if missing else "")
            )
    summary = {
        k: int(s.get(k, 0))
        for k in (
            "reads_total",
            "reads_unmapped",
            "reads_secondary",
            "reads_duplicate",
            "reads_low_mapq",
            "reads_no_cell",
            "reads_no_umi",
            "reads_invalid_umi",
            "reads_no_gene",
            "reads_multi_gene",
            "reads_counted",
        )
    }
    return BamCounts(
        keys=keys,
        reads=reads,
        barcodes=list(cells),
        gene_ids=list(genes),
        gene_names=names,
        summary=summary,
    )


def split_keys(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(cell, gene, umi) integer columns of packed keys."""
    keys = keys.astype(np.uint64)
    umi = keys & np.uint64((1 << UMI_BITS) - 1)
    gene = (keys >> np.uint64(UMI_BITS)) & np.uint64((1 << GENE_BITS) - 1)
    cell = keys >> np.uint64(GENE_BITS + UMI_BITS)
    return cell.astype(np.int64), gene.astype(np.int64), umi.astype(np.int64)


def directional_collapse(umis: np.ndarray, counts: np.ndarray) -> int:
    """Number of molecules among the UMIs of one (cell, gene) by UMI-tools' directional
    method: UMI ``a`` absorbs ``b`` when they differ at one base and
    ``count(a) ≥ 2·count(b) − 1``; molecules = connected groups from the most-read UMIs."""
    if len(umis) < 2:
        return len(umis)
    order = np.argsort(-counts, kind="stable")
    umis, counts = umis[order], counts[order]
    # one-base differences of 2-bit codes: the XOR is non-zero in exactly one 2-bit slot
    x = umis[:, None] ^ umis[None, :]
    slots = np.zeros_like(x)
    for k in range(UMI_BITS // 2):
        slots += ((x >> (2 * k)) & 3) != 0
    adj = (slots == 1) & (counts[:, None] >= 2 * counts[None, :] - 1)
    seen = np.zeros(len(umis), dtype=bool)
    molecules = 0
    for i in range(len(umis)):
        if seen[i]:
            continue
        molecules += 1
        stack = [i]
        seen[i] = True
        while stack:
            j = stack.pop()
            for k in np.flatnonzero(adj[j] & ~seen):
                seen[k] = True
                stack.append(k)
    return molecules


def count_matrix(counts: BamCounts, *, umi_correction: str = "exact") -> sp.csr_matrix:
    """Cells × genes UMI counts (all barcodes) from :func:`count_bam`'s keys."""
    cell, gene, umi = split_keys(counts.keys)
    shape = (len(counts.barcodes), len(counts.gene_ids))
    if umi_correction == "exact":
        return sp.csr_matrix((np.ones(len(cell), dtype=np.int32), (cell, gene)), shape=shape)
    if umi_correction != "directional":
        raise ValueError(f"umi_correction must be exact or directional, not {umi_correction!r}")
    group = cell * shape[1] + gene
    starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
    ends = np.r_[starts[1:], len(group)]
    values = np.array(
        [
            directional_collapse(umi[a:b], counts.reads[a:b])
            for a, b in zip(starts, ends, strict=True)
        ],
        dtype=np.int32,
    )
    return sp.csr_matrix((values, (cell[starts], gene[starts])), shape=shape)
