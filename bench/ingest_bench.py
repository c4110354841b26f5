"""Benchmark: peak memory of `rna_ingest` per input format, per stored count entry.

Simulates one sample (default 20,000 cells × 20,000 genes, ~3,000 UMIs per cell) with the
project's simulator and writes it as every input `rna_ingest` reads: a 10x HDF5 file
(gzip-compressed, as Cell Ranger writes it), 10x matrix folders (v3 gzipped, v2 plain), an
.h5ad of sparse counts, an .h5ad with a dense X (fewer cells: a dense matrix is large) and
an .h5ad as shared after an analysis (normalised X, counts in a layer).
Each is then read by `rna_ingest` in a fresh process, as the rule runs it, and its peak RSS
measured; a 200-cell sample of the same format gives the process's base (Python, anndata,
scanpy imported). Prints and writes, per format: stored entries (non-zeros; every value of
a dense matrix), file size, peak RSS, bytes per entry above the base, and what the rule asks
(:func:`immunoprofiler.io.sizing.read_memory_mb`, from the per-entry figures measured here,
stored in that module). The rule's ask must cover the peak in every format: ``covered``.

Usage: python bench/ingest_bench.py [--cells 20000] [--dense-cells 4000] [--genes 20000]
                                    [--out bench/out_ingest]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import anndata as ad
import numpy as np
import psutil
import scipy.sparse as sp
from benchlib import ROOT, run_measured

FORMATS = ("h5", "mtx_v3", "mtx_v2", "h5ad", "h5ad_dense", "h5ad_x_and_counts")

# the job's work in a fresh process, which then writes its exact peak RSS (MB): VmHWM, the
# high-water mark of its own memory (getrusage's maxrss would count the parent's at fork)
READ = """
import re, sys
from pathlib import Path
from immunoprofiler.params import RnaIngest
from immunoprofiler.pipeline import rna_ingest
rna_ingest(sys.argv[1], sys.argv[2], sample_id="S1", metadata={}, params=RnaIngest(genome=None))
kb = re.search(r"VmHWM:\\s+(\\d+) kB", Path("/proc/self/status").read_text()).group(1)
Path(sys.argv[3]).write_text(str(int(kb) / 1024))
"""


def write(a: ad.AnnData, fmt: str, folder: Path) -> Path:
    """``a`` (raw counts in X) in input format ``fmt`` below ``folder``."""
    from immunoprofiler.io.tenx import write_10x_h5, write_10x_mtx

    folder.mkdir(parents=True, exist_ok=True)
    if fmt == "h5":
        path = folder / "filtered_feature_bc_matrix.h5"
        write_10x_h5(a, path)
    elif fmt.startswith("mtx"):
        path = folder / "filtered_feature_bc_matrix"
        write_10x_mtx(a, path, version=3 if fmt == "mtx_v3" else 2)
    else:
        path = folder / "counts.h5ad"
        X = a.X.toarray() if fmt == "h5ad_dense" else sp.csr_matrix(a.X, dtype=np.float32)
        out = ad.AnnData(X=X, obs=a.obs[[]], var=a.var[["gene_ids"]])
        if fmt == "h5ad_x_and_counts":  # as shared after an analysis: X normalised
            out.layers["counts"] = X.copy()
            out.X = X.copy()
            out.X.data = np.log1p(out.X.data)
        out.write_h5ad(path)
    return path


def disk_mb(path: Path) -> float:
    files = [p for p in path.rglob("*") if p.is_file()] if path.is_dir() else [path]
    return sum(f.stat().st_size for f in files) / 2**20


def measure(path: Path, out: Path) -> float:
    """Peak RSS (MB) of `rna_ingest` reading ``path`` in a fresh process."""
    peak = out.with_suffix(".peak")
    run_measured(
        [sys.executable, "-c", READ, str(path), str(out), str(peak)],
        log=out.with_suffix(".log"),
    )
    return float(peak.read_text())


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--cells", type=int, default=20_000)
    ap.add_argument("--dense-cells", type=int, default=4_000)
    ap.add_argument("--genes", type=int, default=20_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out_ingest")
    args = ap.parse_args()
    from immunoprofiler.datasets import simulate_pbmc
    from immunoprofiler.io.sizing import read_memory_mb, stored_entries

    out = args.out.resolve()
    big = simulate_pbmc(args.cells, n_genes=args.genes, seed=args.seed, frac_empty=0.0)
    small = big[:200].copy()
    res: dict = {
        "cells": args.cells,
        "dense_cells": args.dense_cells,
        "genes": args.genes,
        "cpu": os.cpu_count(),
        "mem_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "formats": {},
    }
    print(
        f"{'format':<17} {'entries':>12} {'file MB':>8} {'peak MB':>8} {'base MB':>8} "
        f"{'B/entry':>8} {'asks MB':>8}"
    )
    for fmt in FORMATS:
        a = big[: args.dense_cells].copy() if fmt == "h5ad_dense" else big
        path = write(a, fmt, out / fmt / "full")
        base_path = write(small, fmt, out / fmt / "base")
        kind, entries = stored_entries(path)
        peak = measure(path, out / fmt / "full.h5ad")
        base = measure(base_path, out / fmt / "base.h5ad")
        per_entry = (peak - base) * 2**20 / entries
        res["formats"][fmt] = {
            "reader": kind,
            "entries": entries,
            "file_mb": round(disk_mb(path), 1),
            "peak_mb": round(peak, 1),
            "base_mb": round(base, 1),
            "bytes_per_entry": round(per_entry, 1),
            "asks_mb": round(read_memory_mb(path), 1),
            "covered": read_memory_mb(path) >= peak,
        }
        print(
            f"{fmt:<17} {entries:>12,} {disk_mb(path):>8.0f} {peak:>8.0f} {base:>8.0f} "
            f"{per_entry:>8.1f} {read_memory_mb(path):>8.0f}",
            flush=True,
        )
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
