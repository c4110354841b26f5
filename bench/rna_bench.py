"""Benchmark: the pipeline's RNA chain vs a plain single-process scanpy script, same data.

Generates N cells (default 200,000 × 20,000 genes in 4 batches, one sample per batch) with the
project's simulator, then runs, one after the other on the same machine:

1. the pipeline (`snakemake --cores C`, integration `harmony` to keep scVI training time out);
2. bench/plain_scanpy.py, the same steps in one process.

Prints wall time and peak memory of each (pipeline: the largest single job's max RSS from
Snakemake's benchmark files; plain script: its max RSS) and their ratios, and writes them to
OUT/results.json, with the cells left after QC and the disk each folder of the run takes.
``--repeat N`` runs the two in turn N times and adds the medians of the rounds' ratios (the
machine's speed drifts between runs, and the plain script's peak varies from run to run).
``slurm_probe_s`` records how long Snakemake's SLURM plugin waits on ``scontrol`` at start-up
here (~9 s where a Slurm client has no controller answering; run with one up, or none).
Targets at 200k cells on 2 cores: wall ratio ≤ 1.0, memory ratio ≤ 0.5.

Usage: python bench/rna_bench.py [--cells 200000] [--genes 20000] [--batches 4] [--cores 2]
                                 [--out bench/out] [--seed 0] [--median-umis 3000]
                                 [--skip-plain] [--repeat 1]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
from benchlib import ROOT, run_measured, run_pipeline, slurm_probe_s


def _simulate(args: tuple) -> str:
    """One sample's raw counts to ``path`` (a worker process: samples are drawn in parallel)."""
    import anndata as ad

    from immunoprofiler.datasets import simulate_pbmc

    path, per, genes, b, batches, seed, median_umis = args
    t = time.perf_counter()
    a = simulate_pbmc(
        per, n_genes=genes, batch=b, n_batches=batches, seed=seed, median_umis=median_umis
    )
    counts = ad.AnnData(X=None, obs=a.obs[["true_cell_type"]], var=a.var[["gene_ids"]])
    counts.layers["counts"] = a.X
    counts.write_h5ad(path)
    return f"generated {Path(path).stem}: {a.n_obs} cells x {a.n_vars} genes in {time.perf_counter() - t:.0f} s"


def generate(
    out: Path,
    cells: int,
    genes: int,
    batches: int,
    seed: int,
    *,
    median_umis: float = 3000.0,
    workers: int = 1,
) -> Path:
    """One .h5ad of raw counts per batch (sample), drawn by ``workers`` processes, and a
    sample sheet."""
    from multiprocessing import Pool

    data = out / "data"
    data.mkdir(parents=True, exist_ok=True)
    sheet = out / "samples.tsv"
    per = cells // batches
    rows, todo = [], []
    for b in range(batches):
        sid = f"S{b + 1}"
        path = data / f"{sid}.h5ad"
        if not path.exists():
            todo.append((str(path), per, genes, b, batches, seed, median_umis))
        rows.append(
            {"sample_id": sid, "modality": "rna", "path": str(path), "batch": f"batch{b + 1}"}
        )
    with Pool(max(1, workers)) as pool:
        for line in pool.imap(_simulate, todo):
            print(line, flush=True)
    pd.DataFrame(rows).to_csv(sheet, sep="\t", index=False)
    return sheet


def disk_gb(entry: Path) -> float:
    """GB on disk of a file or a folder's files (symbolic links: 0; the cohort files' HDF5
    links to another file's matrices take no space either)."""
    files = entry.rglob("*") if entry.is_dir() else [entry]
    return round(
        sum(f.stat().st_size for f in files if f.is_file() and not f.is_symlink()) / 1e9, 2
    )


def pipeline(out: Path, sheet: Path, cores: int) -> dict:
    work, wall, tree_peak, jobs = run_pipeline(
        out, {"samples": str(sheet), "rna": {"integrate": {"method": "harmony"}}}, cores
    )
    qc = work / "results" / "qc" / "rna_qc.tsv"
    return {
        "wall_s": wall,
        "largest_job_rss_mb": jobs[0]["max_rss_mb"],
        "largest_job": jobs[0]["job"],
        "all_processes_peak_mb": tree_peak,
        "cells_after_qc": int(pd.read_csv(qc, sep="\t")["n_cells_after"].sum()),
        "disk_gb": {
            "inputs": disk_gb(out / "data"),
            **{e.name: disk_gb(e) for e in sorted((work / "results" / "rna").iterdir())},
        },
        "jobs": jobs,
    }


def plain(out: Path, sheet: Path, cores: int) -> dict:
    env_cmd = [
        sys.executable,
        str(ROOT / "bench" / "plain_scanpy.py"),
        str(sheet),
        str(out / "plain.h5ad"),
        str(ROOT / "resources" / "rna_cell_types.tsv"),
    ]
    os.environ["OMP_NUM_THREADS"] = os.environ["NUMBA_NUM_THREADS"] = str(cores)
    wall, peak = run_measured(env_cmd, log=out / "plain.log")
    return {"wall_s": wall, "peak_rss_mb": peak}


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--cells", type=int, default=200_000)
    ap.add_argument("--genes", type=int, default=20_000)
    ap.add_argument("--batches", type=int, default=4)
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--median-umis", type=float, default=3000.0, help="sequencing depth (simulator's median)"
    )
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    ap.add_argument("--skip-plain", action="store_true", help="only run the pipeline")
    ap.add_argument(
        "--repeat", type=int, default=1, help="rounds of pipeline then plain script (medians)"
    )
    args = ap.parse_args()
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    sheet = generate(
        out,
        args.cells,
        args.genes,
        args.batches,
        args.seed,
        median_umis=args.median_umis,
        workers=args.cores,
    )
    res = {
        "cells": args.cells,
        "genes": args.genes,
        "batches": args.batches,
        "median_umis": args.median_umis,
        "cores": args.cores,
        "cpu": os.cpu_count(),
        "mem_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "slurm_probe_s": slurm_probe_s(),
    }
    for i in range(args.repeat):  # pipeline and plain script in turn: the machine drifts
        run = {"pipeline": pipeline(out, sheet, args.cores)}
        p = run["pipeline"]
        print(
            f"pipeline: {p['wall_s']:.0f} s, largest job {p['largest_job']} "
            f"{p['largest_job_rss_mb']:.0f} MB",
            flush=True,
        )
        if not args.skip_plain:
            run["plain"] = plain(out, sheet, args.cores)
            run["wall_ratio"] = p["wall_s"] / run["plain"]["wall_s"]
            run["memory_ratio"] = p["largest_job_rss_mb"] / run["plain"]["peak_rss_mb"]
            print(
                f"plain scanpy: {run['plain']['wall_s']:.0f} s, "
                f"peak {run['plain']['peak_rss_mb']:.0f} MB\n"
                f"ratios (pipeline / plain): wall {run['wall_ratio']:.2f} (target <= 1.0), "
                f"largest-job memory {run['memory_ratio']:.2f} (target <= 0.5)",
                flush=True,
            )
        if i == 0:  # the first round in full; every round's figures in "rounds"
            res.update(run)
        brief = {k: v for k, v in p.items() if k != "jobs"}
        res.setdefault("rounds", []).append({**run, "pipeline": brief})
    if args.repeat > 1 and not args.skip_plain:
        for key in ("wall_ratio", "memory_ratio"):
            res[f"median_{key}"] = float(np.median([r[key] for r in res["rounds"]]))
        print(
            f"median of {args.repeat} rounds: wall {res['median_wall_ratio']:.2f}, "
            f"largest-job memory {res['median_memory_ratio']:.2f}"
        )
    (out / "results.json").write_text(json.dumps(res, indent=2))
    print("per job (s, max RSS MB):")
    for j in res["pipeline"]["jobs"]:
        print(f"  {j['job']:<40} {j['s']:>8.1f} {j['max_rss_mb']:>9.0f}")


if __name__ == "__main__":
    main()
