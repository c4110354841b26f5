"""Benchmark: what a job costs before it does any work, and what the per-sample jobs cost.

Run on an otherwise idle machine; every number comes from fresh processes:

1. start-up: the adapter preamble of a job (``configure()`` then importing the step's
   function, as ``scripts/<rule>.py`` does) in a fresh interpreter, ``--repeats`` times:
   median wall seconds and peak RSS, and whether torch or scanpy got imported;
2. per-sample jobs: ``snakemake --cores 1 --until cyto_preprocess rna_qc`` (``cyto_clean``
   in a checkout from before the four per-file rules became one) on the demo cohort in a
   fresh folder (4 RNA samples in four formats, 8 FCS files): the run's wall time and, per
   rule, the median job seconds and max RSS from Snakemake's benchmark files;
3. Snakemake's own start: ``snakemake -n`` in that finished folder (parse the Snakefile, read
   the sheet, build the DAG; nothing to do), ``--repeats`` times: median wall seconds, and
   whether parsing imported anndata — paid by every run, dry run and, on SLURM, every job;
4. with ``--whole``: the whole demo (``--cores 2``), wall time and the slowest jobs.

``--src PATH`` imports the package and runs the Snakefile of another checkout (for example a
``git worktree`` of an older commit), so before and after are measured by the same script.

Usage: python bench/startup_bench.py [--src .] [--repeats 5] [--whole]
                                     [--out bench/out_startup] [--label after]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchlib import ROOT, job_benchmarks, run_measured

#: per-sample rules, before (four per cytometry file) and after (one); a checkout has one set
STEPS = (
    "cyto_preprocess",
    "cyto_ingest",
    "cyto_compensate",
    "cyto_transform",
    "cyto_clean",
    "rna_ingest",
    "rna_qc",
)

PREAMBLE = """
import json, resource, sys, time
t0 = time.perf_counter()
from immunoprofiler.runtime import configure
configure(log=sys.argv[1], threads=1)
from immunoprofiler.pipeline import {step}
print(json.dumps({{
    "s": time.perf_counter() - t0,
    "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "torch": "torch" in sys.modules,
    "scanpy": "scanpy" in sys.modules,
}}))
"""


def startup(src: Path, out: Path, repeats: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(src / "src")}
    rows = {}
    for step in [s for s in STEPS if (src / "scripts" / f"{s}.py").exists()]:
        runs = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            proc = subprocess.run(
                [sys.executable, "-c", PREAMBLE.format(step=step), str(out / "startup.log")],
                capture_output=True,
                text=True,
                env=env,
                check=True,
            )
            run = json.loads(proc.stdout.strip().splitlines()[-1])
            run["process_s"] = time.perf_counter() - t0  # interpreter start-up included
            runs.append(run)
        rows[step] = {
            "median_process_s": round(statistics.median(r["process_s"] for r in runs), 3),
            "median_import_s": round(statistics.median(r["s"] for r in runs), 3),
            "median_rss_mb": round(statistics.median(r["rss_mb"] for r in runs), 1),
            "imports_torch": runs[0]["torch"],
            "imports_scanpy": runs[0]["scanpy"],
        }
        print(step, rows[step], flush=True)
    return rows


def snakemake(src: Path, work: Path, cores: int, *targets: str) -> tuple[float, list[dict]]:
    work.mkdir(parents=True, exist_ok=True)
    # a fresh folder holding the demo's config/ (as the workflow tests set one up)
    shutil.copytree(src / ".test" / "demo", work / "config", dirs_exist_ok=True)
    cmd = [sys.executable, "-m", "snakemake", "-s", str(src / "Snakefile")]
    cmd += ["--directory", str(work), "--cores", str(cores), *targets]
    env_src = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = str(src / "src")  # the jobs import this checkout's package
    try:
        wall, _ = run_measured(cmd, log=work.parent / f"{work.name}.log")
    finally:
        if env_src is None:
            os.environ.pop("PYTHONPATH")
        else:
            os.environ["PYTHONPATH"] = env_src
    return wall, job_benchmarks(work)


def dry_runs(src: Path, work: Path, repeats: int) -> dict:
    """``snakemake -n`` in a finished folder, ``repeats`` times (``-X importtime`` once, to
    see whether parsing the Snakefile imported anndata)."""
    cmd = [sys.executable, "-m", "snakemake", "-s", str(src / "Snakefile")]
    cmd += ["--directory", str(work), "--cores", "1", "-n"]
    env = {**os.environ, "PYTHONPATH": str(src / "src")}
    walls = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run(cmd, capture_output=True, env=env, check=True)
        walls.append(time.perf_counter() - t0)
    probe = subprocess.run(
        [sys.executable, "-X", "importtime", *cmd[1:]], capture_output=True, text=True, env=env
    )
    return {
        "median_s": round(statistics.median(walls), 2),
        "runs_s": [round(w, 2) for w in walls],
        "imports_anndata": bool(re.search(r"\|\s+anndata$", probe.stderr, re.M)),
    }


def per_rule(jobs: list[dict]) -> dict:
    rules: dict[str, list[dict]] = {}
    for j in jobs:
        rules.setdefault(j["job"].split("/")[0], []).append(j)
    return {
        rule: {
            "jobs": len(js),
            "median_s": round(statistics.median(j["s"] for j in js), 2),
            "median_max_rss_mb": round(statistics.median(j["max_rss_mb"] for j in js), 1),
        }
        for rule, js in sorted(rules.items())
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--src", type=Path, default=ROOT, help="checkout whose package is measured")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--whole", action="store_true", help="also time the whole demo (2 cores)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out_startup")
    ap.add_argument("--label", default="")
    args = ap.parse_args()
    src, out = args.src.resolve(), args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    commit = subprocess.run(
        ["git", "-C", str(src), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    result: dict = {"label": args.label, "commit": commit, "cpus": os.cpu_count()}
    result["startup"] = startup(src, out, args.repeats)
    last = "cyto_preprocess" if (src / "scripts" / "cyto_preprocess.py").exists() else "cyto_clean"
    wall, jobs = snakemake(src, out / f"per_sample_{commit}", 1, "--until", last, "rna_qc")
    result["per_sample"] = {"wall_s": round(wall, 1), "rules": per_rule(jobs)}
    print("per-sample jobs:", json.dumps(result["per_sample"], indent=1), flush=True)
    result["dry_run"] = dry_runs(src, out / f"per_sample_{commit}", args.repeats)
    print("snakemake -n:", result["dry_run"], flush=True)
    if args.whole:
        wall, jobs = snakemake(src, out / f"demo_{commit}", 2)
        slowest = sorted(jobs, key=lambda j: -j["s"])[:8]
        result["demo"] = {"wall_s": round(wall, 1), "slowest_jobs": slowest}
        print("whole demo:", json.dumps(result["demo"], indent=1), flush=True)
    path = out / f"startup_{args.label or commit}.json"
    path.write_text(json.dumps(result, indent=1) + "\n")
    print("results:", path)


if __name__ == "__main__":
    main()
