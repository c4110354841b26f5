"""kallisto | bustools through kb-python (``kb ref``, ``kb count``).

Index: ``kb ref`` on the FASTA + GTF — a transcriptome index for ``features: gene``, kb's
``nac`` index (mature and nascent transcripts) for ``gene_full``, whose count is the sum of
mature, nascent and ambiguous UMIs (``--sum total``), as STARsolo's GeneFull counts exonic
and intronic reads. Counting: ``kb count`` with the kit's technology string and strand,
barcodes corrected to the whitelist (``bustools correct``: one mismatch), UMIs collapsed per
gene (``--umi-gene``; bustools does not correct UMI sequencing errors, so a UMI with an error
counts twice — STARsolo's ``1MM_CR`` merges it). Read statistics from kb's ``run_info.json``
and ``bustools inspect`` of the corrected BUS file (valid barcodes: reads on the whitelist
after correction, of all reads — reads kallisto could not pseudoalign are not in the BUS
file, so this is a lower bound of Cell Ranger's "Valid Barcodes").
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from ..io.chemistry import Chemistry
from ..io.fastq import ReadPair
from . import RawCounts, plain_copy, read_mtx, run_tool

INDEX = "index.idx"
T2G = "t2g.txt"


def build_index(
    fasta: str | Path,
    gtf: str | Path,
    outdir: Path,
    *,
    features: str,
    threads: int,
    memory_mb: int,
) -> None:
    """``kb ref`` into ``outdir`` (``index.idx``, ``t2g.txt``; ``nac`` files for gene_full)."""
    cmd = ["kb", "ref", "-i", str(outdir / INDEX), "-g", str(outdir / T2G)]
    cmd += ["-f1", str(outdir / "cdna.fa"), "-t", str(threads), "--tmp", str(outdir / "tmp")]
    if features == "gene_full":
        cmd += ["--workflow", "nac", "-f2", str(outdir / "nascent.fa")]
        cmd += ["-c1", str(outdir / "cdna_t2c.txt"), "-c2", str(outdir / "nascent_t2c.txt")]
    run_tool([*cmd, str(fasta), str(gtf)], outdir / "kb_ref.log", outdir / INDEX)


def count(
    pairs: Sequence[ReadPair],
    index: Path,
    workdir: Path,
    *,
    chemistry: Chemistry,
    whitelist: str | Path | None,
    features: str,
    threads: int,
    memory_mb: int,
    bam: str | Path | None = None,
) -> RawCounts:
    """``kb count`` of ``pairs`` (R1, R2, R1, R2, …) into ``workdir``; ``whitelist`` None:
    barcodes are not corrected (``-w NONE``)."""
    if bam is not None:
        raise ValueError("kallisto writes no BAM: rna.keep_bam needs rna.quantifier 'starsolo'")
    workdir = workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    whitelist = plain_copy(whitelist, workdir) if whitelist else None
    cmd = ["kb", "count", "-i", str(index / INDEX), "-g", str(index / T2G)]
    cmd += ["-x", chemistry.kb, "--strand", chemistry.strand, "-o", str(workdir)]
    cmd += ["-w", str(whitelist) if whitelist else "NONE", "-t", str(threads)]
    cmd += ["-m", f"{max(memory_mb // 2, 500)}M", "--tmp", str(workdir / "tmp"), "--overwrite"]
    matrix = "cells_x_genes.mtx"
    if features == "gene_full":
        cmd += ["--workflow", "nac", "--sum", "total"]
        cmd += ["-c1", str(index / "cdna_t2c.txt"), "-c2", str(index / "nascent_t2c.txt")]
        matrix = "cells_x_genes.total.mtx"
    for p in pairs:
        cmd += [str(p.r1), str(p.r2)]
    out = workdir / "counts_unfiltered"
    run_tool(cmd, workdir / "kb_count.log", out / matrix)
    X = read_mtx(out / matrix)
    barcodes = (out / "cells_x_genes.barcodes.txt").read_text().split()
    genes = (out / "cells_x_genes.genes.txt").read_text().split()
    run_info = json.loads((workdir / "run_info.json").read_text())
    reads = int(run_info["n_processed"])
    valid = None
    if whitelist:  # Cell Ranger's "Valid Barcodes": `bustools correct` keeps only the reads
        # whose barcode is on the whitelist after correction, so count those it kept
        from kb_python.config import get_bustools_binary_path

        inspect = workdir / "inspect_corrected.json"
        bus = workdir / "output.unfiltered.bus"
        cmd = [get_bustools_binary_path(), "inspect", "-o", str(inspect), str(bus)]
        run_tool(cmd, workdir / "bustools_inspect.log", inspect)
        valid = round(json.loads(inspect.read_text())["numReads"] / max(reads, 1), 4)
    stats = {
        "reads": reads,
        "valid_barcodes": valid,
        "reads_mapped_to_genome": None,  # pseudoalignment maps to transcripts, not the genome
        "reads_mapped_confidently_to_genome": None,
        "reads_mapped_to_transcriptome": round(run_info["n_pseudoaligned"] / max(reads, 1), 4),
        "reads_mapped_to_genes": round(run_info["n_unique"] / max(reads, 1), 4),
    }
    return RawCounts(X, barcodes, genes, stats)
