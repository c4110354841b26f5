"""Benchmark: counting an aligned 10x BAM (rule rna_bam_count's function) — reads/s and memory.

Generates BAMs of R/4, R/2 and R reads (default R = 20,000,000 reads, 10,000 cells, 20,000
genes, Cell Ranger tags, ~3.8 reads per molecule, 5 % of reads failing a filter) with the
project's simulator, then counts each in a fresh process with ``threads`` decompression
threads, and prints reads/s and peak memory (max RSS of the process) per size, so growth with R
can be read off. Results go to OUT/results.json.

Targets on 2 cores: ≥ 500,000 reads/s with threads 2, peak memory ≤ 2 GB, both growing no
faster than linearly with R.

Usage: python bench/bam_bench.py [--reads 20000000] [--cells 10000] [--threads 2] [--out bench/out_bam]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import psutil
from benchlib import ROOT, run_measured

SCHEMA = str(ROOT / "workflow" / "schemas" / "config.schema.yaml")
COUNT = """
import sys
from snakemake.utils import validate
from immunoprofiler.params import StepParams
from immunoprofiler.pipeline import rna_bam_count
config = {"samples": "-"}
validate(config, sys.argv[4])  # the schema's defaults, as a run without settings gets them
rna_bam_count(sys.argv[1], out_raw=sys.argv[2] + "/raw.h5", out_filtered=sys.argv[2] + "/filtered.h5",
              table=sys.argv[2] + "/summary.tsv", sample_id="bench",
              params=StepParams.from_config(config).rna_bam_count, threads=int(sys.argv[3]))
"""


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--reads", type=int, default=20_000_000)
    ap.add_argument("--cells", type=int, default=10_000)
    ap.add_argument("--genes", type=int, default=20_000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out_bam")
    args = ap.parse_args()
    from immunoprofiler.datasets.bam import write_synthetic_bam

    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    res = {
        "cells": args.cells,
        "genes": args.genes,
        "threads": args.threads,
        "cpu": os.cpu_count(),
        "mem_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "runs": [],
    }
    for reads in (args.reads // 4, args.reads // 2, args.reads):
        bam = out / f"reads{reads}.bam"
        if not bam.exists():
            t = time.perf_counter()
            write_synthetic_bam(
                bam, n_reads=reads, n_cells=args.cells, n_genes=args.genes, seed=args.seed
            )
            print(f"generated {bam.name} in {time.perf_counter() - t:.0f} s", flush=True)
        work = out / f"count{reads}"
        work.mkdir(exist_ok=True)
        cmd = [sys.executable, "-c", COUNT, str(bam), str(work), str(args.threads), SCHEMA]
        wall, peak = run_measured(cmd, log=work / "count.log")
        summary = dict(
            zip(
                *[line.split("\t") for line in (work / "summary.tsv").read_text().splitlines()],
                strict=True,
            )
        )
        run = {
            "reads": reads,
            "wall_s": wall,
            "reads_per_s": reads / wall,
            "peak_rss_mb": peak,
            "cells_called": int(summary["cells"]),
            "umis": int(summary["umis"]),
            "sequencing_saturation": float(summary["sequencing_saturation"]),
        }
        res["runs"].append(run)
        print(
            f"{reads:>11,} reads: {wall:6.1f} s, {run['reads_per_s']:>9,.0f} reads/s, "
            f"peak {peak:6.0f} MB, {run['cells_called']} cells, saturation "
            f"{run['sequencing_saturation']:.2f}",
            flush=True,
        )
    (out / "results.json").write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
