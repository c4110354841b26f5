"""Benchmark: scVI integration at cohort scale on the CPU, through the pipeline's own step
(``immunoprofiler.pipeline.rna_integrate``: the HVG counts read into memory, or with
``--memory-mb`` below three times their size, scVI trained from them on disk).

Input: an HVG file as ``rna_normalize`` writes it (``results/rna/normalized_hvg.h5ad`` of a
``bench/rna_bench.py`` run). ``--cells N`` first writes a cohort of N cells, one sample at a
time, from the file's samples again and again: copy k of a sample becomes a sample of its own
(``<id>_c<k>``, in its own batch), so cells per sample stay as simulated and the batches grow
with the copies (1M cells: ``--cells 1000000`` from the 500k run's file, 420k cells after QC). The timing of scVI depends on the numbers of
cells, genes and batches, not on which cells they are.

The step runs in a child process (``--threads`` torch threads, as the rule's ``threads``),
measured from outside (wall, peak RSS of the process tree); epochs chosen (scvi-tools' size-based
default unless ``--epochs``), seconds per epoch and the latent-space pass come from the step's
log line. Writes OUT/results.json.

Usage: python bench/scvi_bench.py --hvg PATH [--cells N] [--epochs N] [--threads 2]
                                  [--batch-size 128] [--memory-mb MB] [--out bench/out/scvi]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path

import psutil
from benchlib import ROOT, run_measured


def copies(hvg: Path, out: Path, cells: int) -> Path:
    """``hvg``'s cells written again and again into ``out`` until it has ``cells`` cells
    (the last copy cut short), each copy's samples and batches renamed; the copies are
    read lazily from ``hvg`` (dask) and written by anndata a block at a time."""
    import anndata as ad
    import dask.array as da
    import pandas as pd

    from immunoprofiler.io.h5ad import lazy_matrix, read_obs, read_var, write_h5ad

    if out.exists():
        return out
    obs = read_obs(hvg)
    n = -(-cells // len(obs))
    renamed = []
    for c in range(n):
        o = obs.copy()
        for col in ("sample_id", "batch"):
            o[col] = o[col].astype(str) + f"_c{c}"
        o.index = o.index.astype(str) + f"_c{c}"
        renamed.append(o)
    print(f"{n} copies of {len(obs)} cells, cut at {cells}", flush=True)
    cohort = ad.AnnData(
        X=da.concatenate([lazy_matrix(hvg)] * n)[:cells],
        obs=pd.concat(renamed).iloc[:cells],
        var=read_var(hvg),
    )
    cohort.layers["counts"] = da.concatenate([lazy_matrix(hvg, "counts")] * n)[:cells]
    write_h5ad(cohort, out)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--hvg", type=Path, required=True)
    ap.add_argument("--cells", type=int, default=None, help="default: the file's cells")
    ap.add_argument("--epochs", type=int, default=None, help="default: scvi-tools' size-based")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument(
        "--memory-mb",
        type=float,
        default=None,
        help="the job's memory as the rule gives it (counts over a third: scVI trains from "
        "disk); default: no limit, counts read into memory",
    )
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "scvi")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    out = args.out.resolve()
    if args.child:  # the measured process: the rule's adapter, without Snakemake
        import dataclasses

        from snakemake.utils import validate

        from immunoprofiler import pipeline
        from immunoprofiler.params import StepParams
        from immunoprofiler.runtime import configure

        configure(log=str(out / "integrate.log"), threads=args.threads)
        config = {"samples": "samples.tsv"}  # the schema's defaults, as a run gets them
        validate(config, str(ROOT / "workflow" / "schemas" / "config.schema.yaml"))
        params = dataclasses.replace(
            StepParams.from_config(config).rna_integrate,
            method="scvi",
            max_epochs=args.epochs,
            batch_size=args.batch_size,
        )
        pipeline.rna_integrate(
            args.hvg,
            out / "integrated.h5ad",
            model_dir=out / "model",
            params=params,
            memory_mb=args.memory_mb,
        )
        return
    out.mkdir(parents=True, exist_ok=True)
    hvg = args.hvg.resolve()
    if args.cells:
        hvg = copies(hvg, out / f"hvg_{args.cells}.h5ad", args.cells)
    import anndata as ad
    from scvi.model._utils import get_max_epochs_heuristic

    backed = ad.read_h5ad(hvg, backed="r")
    shape, batches = backed.shape, backed.obs["batch"].nunique()
    backed.file.close()
    cmd = [sys.executable, __file__, "--child", "--hvg", str(hvg), "--out", str(out)]
    cmd += ["--threads", str(args.threads), "--batch-size", str(args.batch_size)]
    if args.epochs:
        cmd += ["--epochs", str(args.epochs)]
    if args.memory_mb:
        cmd += ["--memory-mb", str(args.memory_mb)]
    wall, peak = run_measured(cmd, log=out / "child.log")
    line = next(ln for ln in (out / "integrate.log").read_text().splitlines() if "scVI: " in ln)
    m = re.search(
        r"scVI: (\d+) epochs .* trained in ([\d.]+) s \(([\d.]+) s/epoch\), latent space in "
        r"([\d.]+) s",
        line,
    )
    res = {
        "cells": shape[0],
        "genes": shape[1],
        "batches": int(batches),
        "from": str(args.hvg),
        "hvg_file_gb": round(hvg.stat().st_size / 2**30, 2),
        "threads": args.threads,
        "batch_size": args.batch_size,
        "cpu": os.cpu_count(),
        "mem_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "memory_mb": args.memory_mb,
        "from_disk": "read from disk" in line,
        "epochs": int(m[1]),
        "epochs_asked": args.epochs,
        "default_epochs": get_max_epochs_heuristic(shape[0]),  # scvi-tools' size-based
        "train_s": float(m[2]),
        "s_per_epoch": float(m[3]),
        "latent_s": float(m[4]),
        "wall_s": round(wall, 1),
        "peak_rss_mb": round(peak, 1),
        "log": line,
    }
    (out / "results.json").write_text(json.dumps(res, indent=2))
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
