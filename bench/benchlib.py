"""Shared by the benchmark scripts: run a command while sampling its memory, and read
Snakemake's per-job benchmark files."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import psutil
import yaml

ROOT = Path(__file__).resolve().parents[1]


def run_measured(
    cmd: list[str], cwd: Path | None = None, log: Path | None = None
) -> tuple[float, float]:
    """Run ``cmd``; return wall seconds and peak RSS (MB) of its process tree, sampled every 0.2 s."""
    t0 = time.perf_counter()
    fh = open(log, "w") if log else subprocess.DEVNULL
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=fh, stderr=subprocess.STDOUT)
    peak = 0.0
    stop = threading.Event()

    def poll() -> None:
        nonlocal peak
        p = psutil.Process(proc.pid)
        while not stop.is_set():
            try:
                procs = [p, *p.children(recursive=True)]
                rss = sum(q.memory_info().rss for q in procs if q.is_running())
                peak = max(peak, rss / 2**20)
            except psutil.Error:
                pass
            time.sleep(0.2)

    th = threading.Thread(target=poll, daemon=True)
    th.start()
    rc = proc.wait()
    stop.set()
    th.join()
    wall = time.perf_counter() - t0
    if rc != 0:
        raise SystemExit(f"{' '.join(cmd)} failed with exit code {rc} (log: {log})")
    return wall, peak


def job_benchmarks(work: Path) -> list[dict]:
    """One row per job from ``work/benchmarks``: job, seconds, max RSS (MB); largest first."""
    jobs = []
    for f in sorted((work / "benchmarks").rglob("*.tsv")):
        b = pd.read_csv(f, sep="\t").iloc[-1]
        jobs.append(
            {
                "job": str(f.relative_to(work / "benchmarks"))[:-4],
                "s": float(b["s"]),
                "max_rss_mb": float(b["max_rss"]),
            }
        )
    jobs.sort(key=lambda j: -j["max_rss_mb"])
    return jobs


def slurm_probe_s() -> float | None:
    """Seconds ``scontrol show config`` takes here (None: no Slurm client). Snakemake's SLURM
    executor plugin, when installed, runs it at every Snakemake start (timeout 10 s): where
    a Slurm client is configured but no controller answers, each pipeline run waits ~9 s
    for it, a cost of the machine, not of the pipeline."""
    import shutil

    if shutil.which("scontrol") is None:
        return None
    t = time.perf_counter()
    subprocess.run(["scontrol", "show", "config"], capture_output=True, timeout=60)
    return round(time.perf_counter() - t, 2)


def run_pipeline(
    out: Path, config: dict, cores: int, scheduler: str = "ilp", subsample: int | None = None
) -> tuple[Path, float, float, list[dict]]:
    """``snakemake --forceall`` in ``out/pipeline`` with ``config`` (written to a config file),
    Snakemake's job ``scheduler`` (``ilp``, its default, or ``greedy``) and
    ``--scheduler-subsample`` (the ready jobs it weighs per round; None: all): returns the
    work folder, wall seconds, peak RSS of the process tree and the per-job rows."""
    work = out / "pipeline"
    work.mkdir(parents=True, exist_ok=True)
    cfg = out / "pipeline_config.yaml"
    cfg.write_text(yaml.safe_dump(config))
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "-s",
        str(ROOT / "Snakefile"),
        "--directory",
        str(work),
        "--cores",
        str(cores),
        "--configfile",
        str(cfg),
        "--forceall",
        "--nolock",
        "--scheduler",
        scheduler,
        *(["--scheduler-subsample", str(subsample)] if subsample else []),
    ]
    wall, tree_peak = run_measured(cmd, log=out / "pipeline.log")
    return work, wall, tree_peak, job_benchmarks(work)
