"""Benchmark: the DAG of an N-sample cohort — build time, jobs, and ILP vs greedy scheduling.

Writes one small 10x HDF5 and one small FCS file with the project's simulators, and a sample
sheet of N RNA and N cytometry rows pointing at symbolic links to them (four batches). Then,
in fresh folders:

1. ``snakemake --dry-run``: the DAG build (sheet validation, every FCS header read for the
   panel grouping, every job's inputs resolved) and the job count per rule — a dry run skips
   job selection;
2. ``snakemake --touch --cores C --scheduler S`` for S = ``greedy`` and ``ilp`` (Snakemake's
   default): every job "runs" by creating its outputs at once, so the wall time is the DAG
   build plus the scheduler's own work on thousands of ready jobs (C = 200 stands for a
   SLURM run's ``jobs: 200``).

Prints and writes (OUT/results.json) the wall time and peak memory of each run and the jobs.

Usage: python bench/dag_bench.py [--samples 1000] [--cores 200] [--out bench/out_dag]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path

import pandas as pd
from benchlib import ROOT, run_measured


def generate(data: Path, n: int, seed: int = 0) -> Path:
    """One RNA file and one FCS file, N links to each, and the sheet."""
    from immunoprofiler.datasets.cytometry import simulate_cytometry, write_fcs
    from immunoprofiler.datasets.demo import simulate_pbmc
    from immunoprofiler.io.tenx import write_10x_h5

    data.mkdir(parents=True, exist_ok=True)
    h5, fcs = data / "one.h5", data / "one.fcs"
    if not h5.exists():
        write_10x_h5(simulate_pbmc(300, batch=0, seed=seed), h5)
    if not fcs.exists():
        X, names, desc, _, spill = simulate_cytometry(2000, modality="cytof", seed=seed)
        write_fcs(fcs, X, names, desc, spillover=spill)
    rows = []
    for i in range(n):
        for modality, src, ext in (("rna", h5, "h5"), ("cytof", fcs, "fcs")):
            sid = f"{modality}{i:05d}"
            link = data / f"{sid}.{ext}"
            if not link.exists():
                link.symlink_to(src)
            rows.append((sid, modality, str(link), f"b{i % 4 + 1}"))
    sheet = data / "samples.tsv"
    pd.DataFrame(rows, columns=["sample_id", "modality", "path", "batch"]).to_csv(
        sheet, sep="\t", index=False
    )
    return sheet


def snakemake(work: Path, sheet: Path, *args: str) -> tuple[float, float, str]:
    work.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile")]
    cmd += ["--directory", str(work), *args, "--config", f"samples={sheet}"]
    log = work / "snakemake.log"
    wall, peak = run_measured(cmd, log=log)
    return round(wall, 1), round(peak), log.read_text()


def dry_run(work: Path, sheet: Path) -> dict:
    wall, peak, text = snakemake(work, sheet, "--dry-run", "--cores", "1")
    table = text.split("Job stats:", 1)[1].split("total", 1)
    jobs = {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", table[0], flags=re.M)}
    total = int(re.match(r"\s+(\d+)", table[1])[1])
    return {"wall_s": wall, "peak_mb": peak, "jobs": total, "per_rule": jobs}


def touch_run(work: Path, sheet: Path, cores: int, scheduler: str) -> dict:
    wall, peak, text = snakemake(
        work, sheet, "--touch", "--cores", str(cores), "--scheduler", scheduler
    )
    done = re.findall(r"(\d+) of (\d+) steps \(100%\) done", text)
    if not done:
        raise RuntimeError(f"{work}: the touch run did not finish (see snakemake.log)")
    return {"wall_s": wall, "peak_mb": peak, "jobs": int(done[-1][1])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=1000, help="RNA samples (and as many FCS)")
    ap.add_argument("--cores", type=int, default=200, help="--cores of the dry run")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out_dag")
    args = ap.parse_args()
    out = args.out.resolve()
    t = time.perf_counter()
    sheet = generate(out / "data", args.samples)
    print(f"sheet of {2 * args.samples} rows in {time.perf_counter() - t:.0f} s", flush=True)
    res = {"samples_rna": args.samples, "samples_cytof": args.samples, "cores": args.cores}
    res["cpu"] = os.cpu_count()
    res["dry_run"] = dry_run(out / "work_dry", sheet)
    d = res["dry_run"]
    print(f"dry run: {d['jobs']} jobs, {d['wall_s']} s, {d['peak_mb']} MB", flush=True)
    for scheduler in ("greedy", "ilp"):
        r = touch_run(out / f"work_{scheduler}", sheet, args.cores, scheduler)
        res[scheduler] = r
        print(f"{scheduler}: {r['jobs']} jobs, {r['wall_s']} s, {r['peak_mb']} MB", flush=True)
    print(json.dumps(d["per_rule"], indent=1))
    (out / "results.json").write_text(json.dumps(res, indent=2) + "\n")
    print("results:", out / "results.json")


if __name__ == "__main__":
    main()
