"""Where the demo cohort's files go and which samples it has: the tables and paths the
Snakefile reads while it parses (pandas only, so parsing does not import anndata; the
simulator is :mod:`immunoprofiler.datasets.demo`)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

# The demo cohort: 4 samples, 2 patients x 2 time points, 2 processing batches, 4 input
# formats (the effects planted in it: immunoprofiler.datasets.demo).
DEMO_SAMPLES = pd.DataFrame(
    {
        "sample_id": ["P1_pre", "P2_pre", "P1_post", "P2_post"],
        "modality": "rna",
        "batch": ["run1", "run1", "run2", "run2"],
        "patient": ["P1", "P2", "P1", "P2"],
        "condition": ["anti-PD-1"] * 4,
        "timepoint": ["pre", "pre", "post", "post"],
        "response": ["R", "NR", "R", "NR"],
        "format": ["mex_v3", "h5_v3", "mex_v2", "h5ad"],
    }
)
_RELPATH = {
    "mex_v3": "{s}/filtered_feature_bc_matrix",
    "h5_v3": "{s}/filtered_feature_bc_matrix.h5",
    "mex_v2": "{s}/filtered_gene_bc_matrices/GRCh38",
    "h5ad": "{s}/counts.h5ad",
}
# One demo sample is also written as raw reads (10x 3' v3 FASTQ in two lanes, barcodes from
# 10x's v3 whitelist) with a small genome (FASTA + GTF, one transcript per demo gene): the
# demo sheet points at its FASTQ, so the quick start runs FASTQ -> counts too.
DEMO_FASTQ = "P2_post"
FASTQ_LANES = ("L001", "L002")
# The cytometry part of the demo: the same patients and time points, CyTOF and flow.
DEMO_CYTO_SAMPLES = pd.DataFrame(
    {
        "sample_id": ["P1_pre", "P2_pre", "P1_post", "P2_post"] * 2,
        "modality": ["cytof"] * 4 + ["flow"] * 4,
        "batch": ["run1", "run1", "run2", "run2"] * 2,
        "patient": ["P1", "P2", "P1", "P2"] * 2,
        "condition": ["anti-PD-1"] * 8,
        "timepoint": ["pre", "pre", "post", "post"] * 2,
        "response": ["R", "NR", "R", "NR"] * 2,
    }
)


def demo_paths(outdir: str | Path = "resources/demo") -> dict[str, str]:
    """Where :func:`write_demo` puts each demo input: RNA by ``sample_id``, cytometry by
    ``<modality>_<sample_id>`` (plus ``cytof_panel``, the CyTOF panel TSV), the genome
    (``genome_fasta``, ``genome_gtf``) and the FASTQ sample's files
    (``fastq_<lane>_<read>``)."""
    out = {
        r.sample_id: str(Path(outdir) / _RELPATH[r.format].format(s=r.sample_id))
        for r in DEMO_SAMPLES.itertuples()
    }
    for r in DEMO_CYTO_SAMPLES.itertuples():
        out[f"{r.modality}_{r.sample_id}"] = str(Path(outdir) / r.modality / f"{r.sample_id}.fcs")
    out["cytof_panel"] = str(Path(outdir) / "cytof" / "panel.tsv")
    out["genome_fasta"] = str(Path(outdir) / "genome" / "genome.fa")
    out["genome_gtf"] = str(Path(outdir) / "genome" / "genes.gtf")
    for lane in FASTQ_LANES:
        for read in ("R1", "R2"):
            name = f"{DEMO_FASTQ}_S1_{lane}_{read}_001.fastq.gz"
            out[f"fastq_{lane}_{read}"] = str(Path(outdir) / DEMO_FASTQ / "fastq" / name)
    return out


def is_demo_cohort(paths: Iterable[str], demo: Iterable[str]) -> bool:
    """Whether ``paths`` (a sheet's RNA paths, absolute or relative to the working directory)
    are all files of the demo (``demo``: :func:`demo_paths` values), and there is at least one.

    Examples
    --------
    >>> is_demo_cohort(["resources/demo/P2_post/counts.h5ad"], demo_paths().values())
    True
    """
    ours = {os.path.abspath(p) for p in demo}
    paths = [os.path.abspath(p) for p in paths]
    return bool(paths) and all(p in ours for p in paths)
