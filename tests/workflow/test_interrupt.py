"""A run killed with SIGKILL (Snakemake and its running jobs at once, as when a node is lost)
at five points of the demo — during a per-sample job, during an ``.h5ad`` write, during scVI
training, during a cohort step and during the report — is finished each time by the same
command, and everything it wrote equals the uninterrupted demo run in another fresh directory:
byte-identical tables, equal ``.h5ad`` arrays (scVI retrained from scratch included).

The killed run starts from the uninterrupted run's demo inputs and the FASTQ sample's index and counts
(:data:`SEEDED`, copied with their times): no kill point falls in those steps, and the reads'
path is tested on its own (tests/unit/test_quant.py, the demo tests)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import anndata as ad
import numpy as np
import pytest

from tests.conftest import make_workdir

from .conftest import run_snakemake, snakemake_cmd

pytestmark = pytest.mark.slow


SEEDED = (  # the demo inputs, the FASTQ sample's reference index and counts
    "resources/demo",
    "results/rna/reference",
    "results/rna/fastq_counts",
    "results/qc/fastq_counts",
)


def _started(log: str) -> Callable[[Path], bool]:
    return lambda work: (work / log).is_file()


def _partial(work: Path) -> bool:
    """An .h5ad being written by this run (not one left by the previous kill)."""
    if not (work / "results").is_dir():
        return False
    since = (work / ".launched").stat().st_mtime
    return any(p.stat().st_mtime > since for p in (work / "results").rglob("*.partial"))


def _training(work: Path) -> bool:
    """scVI's trainer has started (Lightning logs the devices) and not finished."""
    log = work / "logs/rna_integrate/rna_integrate.log"
    text = log.read_text(errors="replace") if log.is_file() else ""
    return "GPU available" in text and "stopped" not in text


KILL_POINTS = {  # what is running when the kill comes
    "a per-sample job": lambda w: any((w / "results/cyto").glob("*/preprocess/*.h5ad")),
    "an .h5ad write": _partial,
    "scVI training": _training,
    # started only after integration (a step that finished before an earlier kill would
    # not be running when its log is seen)
    "a cohort step": _started("logs/rna_cluster/rna_cluster.log"),
}


def _kill_when(work: Path, condition: Callable[[Path], bool], *args: str) -> None:
    (work / ".launched").touch()
    time.sleep(0.05)  # a later mtime for what this run writes
    proc = subprocess.Popen(
        snakemake_cmd(work, *args),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: kill Snakemake and its jobs at once
    )
    deadline = time.time() + 900
    while not condition(work):
        if proc.poll() is not None or time.time() > deadline:
            pytest.fail(f"the run ended or timed out before the kill point ({condition})")
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def test_killed_five_times_the_demo_equals_an_uninterrupted_run(demo_run, tmp_path):
    work = make_workdir(tmp_path / "killed", "demo")
    for path in SEEDED:
        shutil.copytree(demo_run / path, work / path)  # copy2: the same times, up to date
    for condition in KILL_POINTS.values():
        _kill_when(work, condition)  # then the same command again, no extra flag
    run_snakemake(work)
    assert not list((work / "results").rglob("*.partial"))
    report = work / "results/report.html"
    _kill_when(work, lambda w: time.sleep(3) or True, "--report", str(report))
    run_snakemake(work, "--report", str(report))
    assert report.stat().st_size > 100_000 and b"composition.tsv" in report.read_bytes()

    files = sorted(p.relative_to(work) for p in (work / "results").rglob("*") if p.is_file())
    theirs = sorted(
        p.relative_to(demo_run) for p in (demo_run / "results").rglob("*") if p.is_file()
    )
    assert set(files) - {Path("results/report.html")} == set(theirs) - {Path("results/report.html")}
    for f in files:
        if f.suffix == ".tsv":
            assert (work / f).read_bytes() == (demo_run / f).read_bytes(), f
        elif f.suffix == ".h5ad":
            _same_h5ad(work / f, demo_run / f)


def _same_h5ad(a_path: Path, b_path: Path) -> None:
    a, b = ad.read_h5ad(a_path), ad.read_h5ad(b_path)
    assert a.obs.equals(b.obs) and a.var.equals(b.var), a_path
    for x, y in [(a.X, b.X), *((a.layers[k], b.layers[k]) for k in a.layers)]:
        if x is None:
            assert y is None
            continue
        xa, ya = (m.toarray() if hasattr(m, "toarray") else np.asarray(m) for m in (x, y))
        np.testing.assert_array_equal(xa, ya, err_msg=str(a_path))
    assert set(a.obsm) == set(b.obsm), a_path
    for key in a.obsm:
        np.testing.assert_array_equal(np.asarray(a.obsm[key]), np.asarray(b.obsm[key]))
