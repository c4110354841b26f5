"""Benchmark: FASTQ → counts (rule rna_quantify's function) with each quantifier, and the BAM
path on the BAM STARsolo writes — reads/s and peak memory, side by side in one run.

For each size R (default 10M and 50M read pairs) the project's simulator writes the demo
genome (every demo gene, one transcript each) and 10x 3′ v3 reads of 10,000 cells (barcodes
from 10x's v3 whitelist, 1.5 reads per UMI, 0.1 % sequencing errors, two lanes). Then, each in
a fresh process on ``--threads`` threads: the index of each quantifier (``rna_reference``),
``rna_quantify`` with kallisto | bustools, ``rna_quantify`` with STARsolo keeping its BAM, and
``rna_bam_count`` on that BAM. Wall time, reads/s and the peak RSS of the process tree (the
tools are child processes) go to OUT/results.json.

Usage: python bench/fastq_bench.py [--reads 10000000 50000000] [--cells 10000] [--threads 2]
                                   [--out bench/out_fastq]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import psutil
from benchlib import ROOT, run_measured

SCHEMA = str(ROOT / "workflow" / "schemas" / "config.schema.yaml")
# each step in a fresh interpreter, with the schema's defaults (what a run without settings gets)
STEP = """
import sys, json
from snakemake.utils import validate
from immunoprofiler.params import StepParams
from immunoprofiler import pipeline
step, schema, threads, args = sys.argv[1], sys.argv[2], int(sys.argv[3]), json.loads(sys.argv[4])
config = {"samples": "-", "rna": args.pop("rna", {})}
validate(config, schema)
p = StepParams.from_config(config)
if step == "rna_reference":
    pipeline.rna_reference(*args.pop("inputs"), params=p.rna_quantify, threads=threads, **args)
elif step == "rna_quantify":
    pipeline.rna_quantify(*args.pop("inputs"), params=p.rna_quantify, threads=threads, **args)
else:
    pipeline.rna_bam_count(*args.pop("inputs"), params=p.rna_bam_count, threads=threads, **args)
"""


def simulate(out: Path, reads: int, cells: int, seed: int) -> dict:
    """The demo genome and ``reads`` read pairs of ``cells`` cells, in two lanes."""
    import numpy as np

    from immunoprofiler.datasets import simulate_pbmc
    from immunoprofiler.datasets.demo import _kit_barcodes
    from immunoprofiler.datasets.reads import write_fastq, write_genome

    reads_per_umi = 1.5
    a = simulate_pbmc(cells, seed=seed, median_umis=reads / reads_per_umi / cells, frac_empty=0.0)
    a.obs_names = _kit_barcodes(a.n_obs, np.random.default_rng(seed))
    genome = write_genome(list(a.var_names), out / "genome.fa", out / "genes.gtf", seed=seed)
    bcs = [b.removesuffix("-1") for b in a.obs_names]
    stats = {"reads": 0, "molecules": 0}
    (out / "fastq").mkdir(exist_ok=True)
    for k, rows in enumerate(np.array_split(np.arange(a.n_obs), 2)):
        s = write_fastq(
            a.X[rows],
            [bcs[i] for i in rows],
            genome,
            list(a.var["gene_ids"]),
            out / "fastq" / f"B_S1_L00{k + 1}_R1_001.fastq.gz",
            out / "fastq" / f"B_S1_L00{k + 1}_R2_001.fastq.gz",
            reads_per_umi=reads_per_umi,
            seed=seed + k,
        )
        stats["reads"] += s["reads"]
        stats["molecules"] += s["molecules"]
    return stats


def step(name: str, args: dict, threads: int, log: Path) -> tuple[float, float]:
    cmd = [sys.executable, "-c", STEP, name, SCHEMA, str(threads), json.dumps(args)]
    return run_measured(cmd, log=log)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--reads", type=int, nargs="+", default=[10_000_000, 50_000_000])
    ap.add_argument("--cells", type=int, default=10_000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out_fastq")
    args = ap.parse_args()
    if shutil.which("STAR") is None:
        raise SystemExit("STAR is not on the PATH (apt-get install rna-star)")
    results = {
        "threads": args.threads,
        "cpu": os.cpu_count(),
        "mem_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "cells": args.cells,
        "sizes": [],
    }
    for n in args.reads:
        out = args.out / f"reads_{n}"
        out.mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        sim = simulate(out, n, args.cells, args.seed)
        sim_s = time.perf_counter() - t
        fastq = sorted((out / "fastq").glob("*_R1_001.fastq.gz"))
        r1 = [str(p) for p in fastq]
        r2 = [p.replace("_R1_", "_R2_") for p in r1]
        row = {
            "read_pairs": sim["reads"],
            "molecules": sim["molecules"],
            "simulate_s": round(sim_s),
            "steps": {},
        }
        for q in ("kallisto", "starsolo"):
            rna = {"quantifier": q, "chemistry": "auto", "keep_bam": q == "starsolo"}
            index = out / f"index_{q}"
            wall, peak = step(
                "rna_reference",
                {
                    "rna": rna,
                    "inputs": [str(out / "genome.fa"), str(out / "genes.gtf")],
                    "out": str(index),
                },
                args.threads,
                out / f"reference_{q}.log",
            )
            row["steps"][f"index_{q}"] = {"s": round(wall, 1), "peak_mb": round(peak)}
            o = out / q
            wall, peak = step(
                "rna_quantify",
                {
                    "rna": rna,
                    "inputs": [r1, r2, str(index)],
                    "out_raw": str(o / "raw.h5"),
                    "out_filtered": str(o / "filtered.h5"),
                    "table": str(o / "table.tsv"),
                    "workdir": str(o / "work"),
                    "bam": str(o / "possorted_genome_bam.bam"),
                    "sample_id": "B",
                },
                args.threads,
                out / f"quantify_{q}.log",
            )
            row["steps"][f"quantify_{q}"] = {
                "s": round(wall, 1),
                "reads_per_s": round(sim["reads"] / wall),
                "peak_mb": round(peak),
            }
            print(
                f"{n:,} read pairs, {q}: {wall:.0f} s, {sim['reads'] / wall:,.0f} reads/s, "
                f"{peak:,.0f} MB",
                flush=True,
            )
        o = out / "bam_count"
        wall, peak = step(
            "rna_bam_count",
            {
                "inputs": [str(out / "starsolo" / "possorted_genome_bam.bam")],
                "out_raw": str(o / "raw.h5"),
                "out_filtered": str(o / "filtered.h5"),
                "table": str(o / "table.tsv"),
                "sample_id": "B",
            },
            args.threads,
            out / "bam_count.log",
        )
        row["steps"]["bam_count_starsolo_bam"] = {
            "s": round(wall, 1),
            "reads_per_s": round(sim["reads"] / wall),
            "peak_mb": round(peak),
        }
        print(f"{n:,} read pairs, rna_bam_count on STARsolo's BAM: {wall:.0f} s", flush=True)
        results["sizes"].append(row)
        shutil.rmtree(out / "fastq")  # the reads are the bulk of the disk
        (args.out / "results.json").write_text(json.dumps(results, indent=1))  # after each size
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
