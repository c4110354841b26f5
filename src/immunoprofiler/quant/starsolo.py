"""STARsolo (STAR ≥ 2.7.10): genome alignment and counting in Cell Ranger's way.

Index: ``STAR --runMode genomeGenerate`` with the GTF's splice junctions
(``--genomeSAindexNbases`` scaled down for small genomes, as STAR's manual asks; a mammalian
genome needs ~32 GB, which the rule's memory asks). Counting: ``--soloType CB_UMI_Simple``
with the kit's barcode/UMI layout and strand, barcodes matched to the whitelist with
``1MM_multi_Nbase_pseudocounts``, UMIs deduplicated with ``1MM_CR`` and filtered with
``MultiGeneUMI_CR`` — the Cell Ranger-like options of STARsolo's manual; ``features:
gene_full`` counts ``GeneFull`` (exons and introns). No cell filter: cells are called from
the raw matrix by the project's own methods. With ``bam``, a coordinate-sorted BAM with
``CR/UR/CB/UB/GX/GN`` tags (what :mod:`immunoprofiler.io.bam` counts).
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Sequence
from pathlib import Path

from ..io.chemistry import Chemistry
from ..io.fastq import ReadPair
from ..io.reference import fasta_sequences
from . import RawCounts, plain_copy, read_mtx, run_tool

MIN_VERSION = (2, 7, 10)
INSTALL = (
    "STARsolo needs STAR >= 2.7.10 on the PATH: on a cluster `module load star` (or your site's "
    "name for it), with conda `conda install -c bioconda star` (workflow/envs/star.yaml; "
    "`snakemake --sdm conda`), on Debian/Ubuntu `apt-get install rna-star`; or set "
    "rna.quantifier: kallisto"
)


def star_version() -> tuple[int, ...] | None:
    """STAR's version on the PATH, or None when there is none."""
    import subprocess

    exe = shutil.which("STAR")
    if exe is None:
        return None
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, check=False)
    digits = out.stdout.strip().lstrip("STAR_").split(".")
    try:
        return tuple(int("".join(c for c in d if c.isdigit()) or 0) for d in digits[:3])
    except ValueError:
        return None


def check_star() -> str:
    """Raise (saying how to install it) unless STAR ≥ 2.7.10 is on the PATH; its version."""
    v = star_version()
    if v is None:
        raise RuntimeError(f"rna.quantifier is 'starsolo' but STAR is not on the PATH. {INSTALL}")
    if v < MIN_VERSION:
        raise RuntimeError(f"STAR {'.'.join(map(str, v))} is too old. {INSTALL}")
    return ".".join(map(str, v))


def build_index(
    fasta: str | Path,
    gtf: str | Path,
    outdir: Path,
    *,
    features: str,
    threads: int,
    memory_mb: int,
) -> None:
    """``STAR --runMode genomeGenerate`` into ``outdir``."""
    check_star()
    fa, annotation = plain_copy(fasta, outdir), plain_copy(gtf, outdir)
    size = fa.stat().st_size  # ≈ bases (plus the line ends and headers)
    sa_bases = min(14, max(4, int(math.log2(max(size, 2)) / 2 - 1)))
    n_seq = len(fasta_sequences(fa))
    cmd = ["STAR", "--runMode", "genomeGenerate", "--runThreadN", str(threads)]
    cmd += ["--genomeDir", str(outdir), "--genomeFastaFiles", str(fa)]
    cmd += ["--sjdbGTFfile", str(annotation), "--genomeSAindexNbases", str(sa_bases)]
    cmd += ["--outFileNamePrefix", f"{outdir}/", "--outTmpDir", str(outdir / "_STARtmp")]
    cmd += ["--limitGenomeGenerateRAM", str(memory_mb * 1024 * 1024)]
    if n_seq > 5000:  # many scaffolds: STAR's manual's bins rule
        cmd += ["--genomeChrBinNbits", str(min(18, int(math.log2(max(size / n_seq, 2)))))]
    run_tool(cmd, outdir / "star_genome.log", outdir / "SA")
    for tmp in (fa, annotation):
        if tmp.parent == outdir:
            tmp.unlink()


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
    """STARsolo on ``pairs`` (cDNA = R2 first, barcode read = R1 second, as STAR takes
    them) in ``workdir``; ``whitelist`` None: barcodes uncorrected (``None``)."""
    check_star()
    workdir = workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    wl = plain_copy(whitelist, workdir) if whitelist else "None"
    feature = "GeneFull" if features == "gene_full" else "Gene"
    cmd = ["STAR", "--runThreadN", str(threads), "--genomeDir", str(index)]
    cmd += ["--readFilesIn", ",".join(str(p.r2) for p in pairs), ",".join(str(p.r1) for p in pairs)]
    cmd += ["--readFilesCommand", "zcat", "--outFileNamePrefix", f"{workdir}/"]
    cmd += ["--outTmpDir", str(workdir / "_STARtmp")]
    cmd += ["--soloType", "CB_UMI_Simple", "--soloCBwhitelist", str(wl)]
    cmd += ["--soloCBstart", "1", "--soloCBlen", str(chemistry.barcode)]
    cmd += ["--soloUMIstart", str(chemistry.barcode + 1), "--soloUMIlen", str(chemistry.umi)]
    cmd += ["--soloBarcodeReadLength", "0", "--soloStrand", chemistry.strand.capitalize()]
    cmd += ["--soloCBmatchWLtype", "1MM_multi_Nbase_pseudocounts", "--soloUMIdedup", "1MM_CR"]
    cmd += ["--soloUMIfiltering", "MultiGeneUMI_CR", "--soloFeatures", feature]
    cmd += ["--soloCellFilter", "None", "--outSAMunmapped", "Within"]
    if bam is not None:
        cmd += ["--outSAMtype", "BAM", "SortedByCoordinate"]
        cmd += ["--outSAMattributes", "NH", "HI", "nM", "AS", "CR", "UR", "CB", "UB", "GX", "GN"]
        cmd += ["--limitBAMsortRAM", str(max(memory_mb - 2000, 1000) * 1024 * 1024)]
    else:
        cmd += ["--outSAMtype", "None"]
    raw = workdir / "Solo.out" / feature / "raw"
    run_tool(cmd, workdir / "star_solo.log", raw / "matrix.mtx")
    if bam is not None:
        shutil.move(workdir / "Aligned.sortedByCoord.out.bam", bam)
    X = read_mtx(raw / "matrix.mtx", transpose=True)
    barcodes = (raw / "barcodes.tsv").read_text().split()
    genes = [line.split("\t")[0] for line in (raw / "features.tsv").read_text().splitlines()]
    return RawCounts(X, barcodes, genes, _summary(workdir / "Solo.out" / feature))


def _summary(folder: Path) -> dict:
    """STARsolo's Summary.csv in the quantifier-neutral fields."""
    rows = {}
    for line in (folder / "Summary.csv").read_text().splitlines():
        key, _, value = line.rpartition(",")
        try:
            rows[key.strip()] = float(value)
        except ValueError:
            continue
    reads = int(rows.get("Number of Reads", 0))

    def frac(key: str) -> float | None:
        return round(rows[key], 4) if key in rows else None

    return {
        "reads": reads,
        "valid_barcodes": frac("Reads With Valid Barcodes"),
        "reads_mapped_to_genome": frac("Reads Mapped to Genome: Unique+Multiple"),
        "reads_mapped_confidently_to_genome": frac("Reads Mapped to Genome: Unique"),
        "reads_mapped_to_transcriptome": None,
        "reads_mapped_to_genes": frac(
            "Reads Mapped to GeneFull: Unique GeneFull"
            if "Reads Mapped to GeneFull: Unique GeneFull" in rows
            else "Reads Mapped to Gene: Unique Gene"
        ),
    }
