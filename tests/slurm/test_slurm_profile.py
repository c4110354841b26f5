"""profiles/slurm on a live single-node cluster: every job goes through Slurm, results equal a
local run, and GPU rules are routed to the GPU partition where they fail at once without a GPU."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time

import anndata as ad
import numpy as np
import pytest

from tests.conftest import ROOT, make_workdir
from tests.workflow.conftest import run_snakemake, snakemake_cmd

from .conftest import sacct

pytestmark = pytest.mark.slow

PROFILES = (
    "--profile",
    str(ROOT / "profiles/slurm"),
    "--workflow-profile",
    str(ROOT / "tests/slurm/profile"),
)


def _flow_sheet(folder):
    from immunoprofiler.datasets.cytometry import simulate_cytometry, write_fcs

    rows = ["sample_id\tmodality\tpath\tbatch"]
    for i in range(4):
        X, names, desc, _, spill = simulate_cytometry(3000, modality="flow", batch=i % 2, seed=i)
        write_fcs(folder / f"f{i}.fcs", X, names, desc, spillover=spill)
        rows.append(f"f{i}\tflow\tf{i}.fcs\tb{i % 2}")
    sheet = folder / "samples.tsv"
    sheet.write_text("\n".join(rows) + "\n")
    return sheet


def _job_ids(workdir):
    logs = list((workdir / "logs/slurm").rglob("*.log"))
    return {p.stem for p in logs}, logs


SUBMITTED = re.compile(r"submitted with SLURM jobid (\d+)")


# Through Slurm: the per-sample steps of the demo's RNA samples read from 10x files and h5ad
# (one group job each), its flow files and the whole flow chain (normalise, cluster,
# annotate, composition, plots). The rest runs the same rules on other data; left out
# because each Slurm job here costs ~25 s of start-up on top of its work (the whole demo took
# 18 minutes of CI): the FASTQ sample (reference and quantification, 1.5 CPU-minutes) and
# the RNA cohort steps; rna_integrate's Slurm routing is tested below.
SLURM_TARGETS = (
    *(f"results/rna/qc/{s}.h5ad" for s in ("P1_pre", "P2_pre", "P1_post")),
    "results/cyto/flow/annotated.h5ad",
    "results/cyto/flow/figures/umap.png",
    "results/cyto/flow/figures/abundance.png",
)


def test_demo_through_slurm_equals_local(slurm_cluster, demo_run, tmp_path):
    """The demo's RNA and flow per-sample jobs and the flow chain through Slurm: the same
    files as the local run in another fresh directory (byte-identical tables, equal arrays)."""
    work = make_workdir(tmp_path / "slurm", "demo")
    proc = run_snakemake(work, *PROFILES, *SLURM_TARGETS, timeout=1500)
    submitted = set(SUBMITTED.findall(proc.stdout + proc.stderr))
    ids, logs = _job_ids(work)
    assert submitted and submitted == ids, (submitted, ids)
    # one job per file (cyto_preprocess) and per RNA sample (a group), cohort steps one each
    assert any("rule_cyto_preprocess" in str(p) for p in logs)
    assert any("group_rna_sample" in str(p) for p in logs)
    assert any("rule_cyto_cluster" in str(p) for p in logs)
    rows = sacct(*ids)
    assert len(rows) == len(ids), rows
    for r in rows:
        assert r["State"] == "COMPLETED" and r["Partition"] == "cpu", r
        assert r["ReqMem"].endswith("M") and int(r["ReqMem"][:-1]) >= 256, r
        assert r["Timelimit"] not in ("", "UNLIMITED"), r
        assert "gres/gpu" not in r["AllocTRES"], r
    # two fresh working directories, same inputs and config: byte-identical tables, equal
    # arrays (the reproducibility promise, checked across directories, not by --forcerun)
    tables = sorted(p.relative_to(work) for p in (work / "results").rglob("*.tsv"))
    assert len(tables) >= 12
    for table in tables:
        assert (work / table).read_bytes() == (demo_run / table).read_bytes(), table
    for h5ad in ("results/rna/qc/P1_pre.h5ad", "results/cyto/flow/annotated.h5ad"):
        a, b = ad.read_h5ad(work / h5ad), ad.read_h5ad(demo_run / h5ad)
        assert a.obs.equals(b.obs), h5ad
        xa, xb = (x.toarray() if hasattr(x, "toarray") else np.asarray(x) for x in (a.X, b.X))
        np.testing.assert_array_equal(xa, xb)
        for key in a.obsm:
            np.testing.assert_array_equal(np.asarray(a.obsm[key]), np.asarray(b.obsm[key]))


def test_gpu_rule_goes_to_gpu_partition_and_fails_fast(slurm_cluster, tmp_path):
    from immunoprofiler.datasets import simulate_pbmc
    from immunoprofiler.io.tenx import write_10x_h5

    for i in range(2):
        write_10x_h5(simulate_pbmc(500, batch=i, seed=i), tmp_path / f"r{i}.h5")
    sheet = tmp_path / "samples.tsv"
    sheet.write_text("sample_id\tmodality\tpath\tbatch\nr0\trna\tr0.h5\tb0\nr1\trna\tr1.h5\tb1\n")
    work = tmp_path / "run"
    config = {"samples": str(sheet), "rna": {"qc": {"min_cells": 50}}}
    # the steps before it run locally (each Slurm job here costs ~25 s of start-up): only
    # the GPU rule goes through Slurm
    run_snakemake(work, "--until", "rna_normalize", config=config)
    proc = run_snakemake(
        work,
        *PROFILES,
        "--until",
        "rna_integrate",
        "--retries",
        "0",
        config=config,
        check=False,
        timeout=900,
    )
    assert proc.returncode != 0
    log = (work / "logs/rna_integrate/rna_integrate.log").read_text()
    assert "requested gpu=1 but torch sees no CUDA device" in log
    assert "Epoch" not in log
    slurm_logs = list((work / "logs/slurm").rglob("*.log"))
    integrate = [p for p in slurm_logs if "rna_integrate" in str(p)]
    assert integrate, slurm_logs
    row = sacct(integrate[0].stem)[0]
    assert row["Partition"] == "gpu" and "gres/gpu=1" in row["AllocTRES"], row
    assert row["State"] == "FAILED"
    assert re.search(r"CUDA_VISIBLE_DEVICES", log)


def test_failed_job_is_reported_and_keep_going_finishes_the_others(slurm_cluster, tmp_path):
    sheet = _flow_sheet(tmp_path)
    good = (tmp_path / "f0.fcs").read_bytes()
    (tmp_path / "cut.fcs").write_bytes(good[: len(good) // 3])
    sheet.write_text(sheet.read_text() + "cut\tflow\tcut.fcs\tb1\n")
    work = tmp_path / "run"
    proc = run_snakemake(
        work,
        *PROFILES,
        "--until",
        "cyto_preprocess",
        "--retries",
        "0",
        # strict mode: the bad file's job fails (the default would exclude the sample)
        config={"samples": str(sheet), "on_sample_failure": "stop"},
        check=False,
        timeout=900,
    )
    assert proc.returncode != 0  # the truncated file failed …
    for s in ("f0", "f1", "f2", "f3"):  # … and --keep-going (in the profile) finished the others
        assert (work / f"results/cyto/flow/preprocess/{s}.h5ad").exists(), s
    assert "cut.fcs" in (work / "logs/cyto_preprocess/flow/cut.log").read_text()
    ids, _ = _job_ids(work)
    states = {r["State"] for r in sacct(*ids)}
    assert "FAILED" in states and "COMPLETED" in states, states


def test_job_killed_for_memory_is_retried_with_more(slurm_cluster, tmp_path):
    sheet = _flow_sheet(tmp_path)
    work = tmp_path / "run"
    run_snakemake(
        work,
        *PROFILES,
        "--until",
        "cyto_normalize",
        "--retries",
        "1",
        # attempt 1 gets far too little (Python, Snakemake and anndata alone need more),
        # attempt 2 enough; the rules' own mem_mb grow with attempt the same way
        # (tests/test_rule_resources.py)
        "--set-resources",
        "cyto_normalize:mem_mb=150*16**(attempt-1)",
        config={"samples": str(sheet)},
        timeout=900,
    )
    assert (work / "results/cyto/flow/normalized.h5ad").exists()
    logs = sorted(
        (work / "logs/slurm").rglob("rule_cyto_normalize/**/*.log"), key=lambda p: int(p.stem)
    )
    assert len(logs) == 2, logs
    first, second = sacct(*(p.stem for p in logs))
    assert first["State"] in ("FAILED", "OUT_OF_MEMORY") and first["ReqMem"] == "150M", first
    assert "Exceeded job memory limit" in logs[0].read_text()
    assert second["State"] == "COMPLETED" and second["ReqMem"] == "2400M", second


def test_interrupting_snakemake_cancels_its_slurm_jobs(slurm_cluster, tmp_path):
    """SIGINT while the executor checks its jobs' status — the moment its list of active jobs
    is empty, so the plugin's own cancel reaches nothing — still leaves no job behind.

    A ``sacct`` wrapper first on Snakemake's PATH holds each status check open for a few
    seconds and marks it with a file; the interrupt is sent while the mark is there."""
    real_sacct = shutil.which("sacct")
    assert real_sacct, "sacct not on PATH"
    checking = tmp_path / "status-check-running"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "sacct"
    wrapper.write_text(
        f'#!/bin/sh\ntouch "{checking}"\nsleep 5\nrm -f "{checking}"\nexec {real_sacct} "$@"\n'
    )
    wrapper.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    sheet = _flow_sheet(tmp_path)
    cmd = snakemake_cmd(tmp_path / "run", *PROFILES, "--config", f"samples={sheet}")
    with open(tmp_path / "snakemake.log", "w") as out:
        # SIGINT back to its default: a shell may have started us with it ignored
        proc = subprocess.Popen(
            cmd,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        ids: set[str] = set()
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            ids = set(SUBMITTED.findall((tmp_path / "snakemake.log").read_text()))
            if ids and "RUNNING" in _squeue(ids).values() and checking.exists():
                break
            time.sleep(0.2)
        assert ids and proc.poll() is None, "no Slurm job started"
        assert checking.exists(), "no status check in progress"
        proc.send_signal(signal.SIGINT)
        rc = proc.wait(timeout=120)
    assert rc != 0
    time.sleep(3)
    left = _squeue(ids)  # nothing left queued or running; cancelled ones may be completing
    assert set(left.values()) <= {"COMPLETING"}, left
    deadline = time.monotonic() + 60
    while left and time.monotonic() < deadline:
        time.sleep(1)
        left = _squeue(ids)
    assert not left, left
    states = {r["State"].split()[0] for r in sacct(*ids)}
    assert "CANCELLED" in states, states


def _squeue(ids) -> dict[str, str]:
    """State of those of ``ids`` still pending or running."""
    out = subprocess.run(
        ["squeue", "-h", "-o", "%i %T", "-t", "PENDING,CONFIGURING,RUNNING,COMPLETING"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    jobs = dict(line.split() for line in out.splitlines() if line.strip())
    return {i: state for i, state in jobs.items() if i in ids}
