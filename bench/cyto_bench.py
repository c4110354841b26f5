"""Benchmark: the whole cytometry chain on M simulated CyTOF events over F FCS files.

Generates M events (default 2,000,000 × 40 channels over 20 files, 4 batches) with the
project's simulator (real CyTOF channel names; beads, dead cells and doublets included;
channels beyond the simulator's panel are barcode-like background channels), runs
`snakemake --cores C` on them in a fresh folder and prints: wall time, the largest job's
peak memory (max RSS from Snakemake's benchmark files), and per step the summed job time
and events/s. ``--compare-files F2`` runs the same number of events again over F2 files
and reports each step's peak memory in both runs, to show what grows with the number of
files. Results go to OUT/results.json.

Targets on 2 cores: the chain in ≤ 5 min at 2M events, ≤ 12 min at 10M, ≤ 90 min at 100M
(1,000 files), no job above 3 GB at any size; per-file
steps' memory independent of the number of files, cohort steps bounded by the fitting
subsamples plus one matrix of the marker values.

Usage: python bench/cyto_bench.py [--events 2000000] [--files 20] [--channels 40]
                                  [--cores 2] [--scheduler ilp|greedy]
                                  [--scheduler-subsample N] [--out bench/out_cyto]
                                  [--compare-files 40]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
from benchlib import ROOT, run_pipeline


def generate(data: Path, events: int, files: int, channels: int, seed: int) -> Path:
    """FCS files and a sample sheet (4 batches, files spread evenly)."""
    from immunoprofiler.datasets.cytometry import simulate_cytometry, write_fcs

    data.mkdir(parents=True, exist_ok=True)
    rows = []
    per = events // files
    for i in range(files):
        sid = f"S{i + 1:03d}"
        path = data / f"{sid}.fcs"
        if not path.exists():
            t = time.perf_counter()
            X, names, desc, _, _ = simulate_cytometry(
                per, modality="cytof", batch=i % 4, seed=seed + i
            )
            pad = channels - len(names)
            if pad > 0:  # background channels (barcodes not used here): Poisson noise
                rng = np.random.default_rng(seed + 10_000 + i)
                X = np.column_stack([X, rng.poisson(1.0, (per, pad)).astype(np.float32)])
                names = names + [f"Pd{100 + k}Di" for k in range(pad)]
                desc = desc + [f"BC{k + 1}" for k in range(pad)]
            write_fcs(path, X, names, desc)
            print(
                f"generated {path.name}: {per} events × {X.shape[1]} channels in "
                f"{time.perf_counter() - t:.1f} s",
                flush=True,
            )
        rows.append(
            {"sample_id": sid, "modality": "cytof", "path": str(path), "batch": f"b{i % 4 + 1}"}
        )
    sheet = data / "samples.tsv"
    pd.DataFrame(rows).to_csv(sheet, sep="\t", index=False)
    return sheet


def run(out: Path, sheet: Path, cores: int, events: int, scheduler: str, subsample: int) -> dict:
    _, wall, tree_peak, jobs = run_pipeline(
        out, {"samples": str(sheet)}, cores, scheduler, subsample
    )
    steps: dict[str, dict] = defaultdict(lambda: {"jobs": 0, "s": 0.0, "max_rss_mb": 0.0})
    for j in jobs:
        step = steps[j["job"].split("/")[0]]
        step["jobs"] += 1
        step["s"] += j["s"]
        step["max_rss_mb"] = max(step["max_rss_mb"], j["max_rss_mb"])
    for step in steps.values():
        step["events_per_s"] = events / step["s"] if step["s"] > 0 else None
    return {
        "wall_s": wall,
        "largest_job": jobs[0]["job"],
        "largest_job_rss_mb": jobs[0]["max_rss_mb"],
        "all_processes_peak_mb": tree_peak,
        "steps": dict(steps),
        "jobs": jobs,
    }


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--events", type=int, default=2_000_000)
    ap.add_argument("--files", type=int, default=20)
    ap.add_argument("--channels", type=int, default=40)
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--scheduler",
        choices=("ilp", "greedy"),
        default="ilp",
        help="Snakemake's job scheduler (its default: ilp; greedy for thousands of jobs)",
    )
    ap.add_argument(
        "--scheduler-subsample",
        type=int,
        default=0,
        help="ready jobs Snakemake weighs per scheduling round (0: all, its default); with "
        "thousands of ready jobs each round stats every ready job's inputs",
    )
    ap.add_argument("--compare-files", type=int, default=0, help="second run over this many files")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out_cyto")
    args = ap.parse_args()
    out = args.out.resolve()
    res = {
        "events": args.events,
        "files": args.files,
        "channels": args.channels,
        "cores": args.cores,
        "scheduler": args.scheduler,
        "scheduler_subsample": args.scheduler_subsample or None,
        "cpu": os.cpu_count(),
        "mem_gb": round(psutil.virtual_memory().total / 2**30, 1),
    }
    runs = [args.files] + ([args.compare_files] if args.compare_files else [])
    for n in runs:
        sub = out / f"files{n}"
        sheet = generate(sub / "data", args.events, n, args.channels, args.seed)
        r = run(sub, sheet, args.cores, args.events, args.scheduler, args.scheduler_subsample)
        res[f"files{n}"] = r
        print(
            f"\n{n} files: wall {r['wall_s']:.0f} s (targets: 2M events ≤ 300 s, 10M ≤ 720 s, "
            f"100M ≤ 5,400 s), largest job {r['largest_job']} {r['largest_job_rss_mb']:.0f} MB "
            "(target ≤ 3,072 MB)"
        )
        print(f"  {'step':<22} {'jobs':>4} {'sum s':>8} {'events/s':>12} {'max RSS MB':>11}")
        for name, s in sorted(r["steps"].items(), key=lambda kv: -kv[1]["s"]):
            eps = f"{s['events_per_s']:,.0f}" if s["events_per_s"] else "-"
            print(f"  {name:<22} {s['jobs']:>4} {s['s']:>8.1f} {eps:>12} {s['max_rss_mb']:>11.0f}")
    if len(runs) == 2:
        a, b = res[f"files{runs[0]}"]["steps"], res[f"files{runs[1]}"]["steps"]
        print(f"\npeak memory per step, {runs[0]} vs {runs[1]} files (same events):")
        for name in sorted(a):
            print(
                f"  {name:<22} {a[name]['max_rss_mb']:>8.0f} {b.get(name, {}).get('max_rss_mb', 0):>8.0f}"
            )
    (out / "results.json").write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
