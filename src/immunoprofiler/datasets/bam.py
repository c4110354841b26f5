"""Synthetic 10x-style BAM files (Cell Ranger tags) for tests and the BAM benchmark."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def write_synthetic_bam(
    path: str | Path,
    *,
    n_reads: int,
    n_cells: int = 10_000,
    n_genes: int = 2_000,
    umi_length: int = 12,
    seed: int = 0,
    threads: int = 2,
) -> dict[str, int]:
    """Write ``n_reads`` aligned reads: real cells (many reads per UMI, some PCR duplicates)
    plus a tail of low-count empty-droplet barcodes; ~5 % of reads fail a filter (unmapped,
    secondary, low MAPQ, no CB, multi-gene). Unsorted. Returns the number of cells written."""
    import pysam

    rng = np.random.default_rng(seed)
    header = {
        "HD": {"VN": "1.4", "SO": "unsorted"},
        "SQ": [{"SN": "chr1", "LN": 248_956_422}],
    }
    alphabet = np.array(list("ACGT"))
    n_bc = n_cells + n_cells // 2  # half as many empty barcodes again
    bcs = ["".join(alphabet[rng.integers(0, 4, 16)]) + "-1" for _ in range(n_bc)]
    weight = np.r_[rng.lognormal(0, 0.5, n_cells) * 50, rng.lognormal(0, 0.5, n_bc - n_cells)]
    # molecules (cell, gene, UMI), then reads drawn from them: ~3 reads per molecule on average
    n_mol = max(n_reads // 3, 1)
    mol_cell = rng.choice(n_bc, size=n_mol, p=weight / weight.sum())
    mol_gene = rng.choice(n_genes, size=n_mol, p=rng.dirichlet(np.full(n_genes, 0.3)))
    mol_umi = rng.integers(0, 4, size=(n_mol, umi_length))
    mol_of = rng.choice(n_mol, size=n_reads, p=(w := rng.lognormal(0, 1, n_mol)) / w.sum())
    cell_of, gene_of = mol_cell[mol_of], mol_gene[mol_of]
    fail = rng.random(n_reads)
    qual = pysam.qualitystring_to_array("F" * 50)
    seq = "A" * 50
    with pysam.AlignmentFile(str(path), "wb", header=header, threads=threads) as out:
        for i in range(n_reads):
            a = pysam.AlignedSegment()
            a.query_name = f"r{i}"
            a.query_sequence = seq
            a.query_qualities = qual
            a.reference_id = 0
            a.reference_start = int(gene_of[i]) * 1000
            a.cigarstring = "50M"
            a.mapping_quality = 255
            f = fail[i]
            if f < 0.01:
                a.flag = 4
            elif f < 0.02:
                a.flag = 256
            elif f < 0.03:
                a.mapping_quality = 3
            umi = "".join(alphabet[mol_umi[mol_of[i]]])
            g = int(gene_of[i])
            tags = [("UB", umi), ("GX", f"ENSG{g:011d}"), ("GN", f"GENE{g}")]
            if f >= 0.04 or f < 0.03:
                tags.insert(0, ("CB", bcs[cell_of[i]]))
            if 0.04 <= f < 0.05:
                tags[-2] = ("GX", f"ENSG{g:011d};ENSG{(g + 1) % n_genes:011d}")
            a.set_tags(tags)
            out.write(a)
    return {"cells": n_cells, "barcodes": n_bc}
