"""A run killed with SIGKILL (Snakemake and its running jobs, as when a node is lost) is
finished by the same command, and its outputs equal an uninterrupted run's."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import anndata as ad
import numpy as np
import pytest

from tests.conftest import make_workdir

from .conftest import run_snakemake, snakemake_cmd

pytestmark = pytest.mark.slow

UNTIL = ("--until", "cyto_clean")


def test_killed_run_is_finished_by_the_same_command(tmp_path):
    whole = make_workdir(tmp_path / "whole", "flow")
    run_snakemake(whole, *UNTIL)

    work = make_workdir(tmp_path / "killed", "flow")
    proc = subprocess.Popen(
        snakemake_cmd(work, *UNTIL),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: kill Snakemake and its jobs at once
    )
    first = work / "results/cyto/flow/ingest"
    deadline = time.time() + 300
    while not (first.is_dir() and any(first.glob("*.h5ad"))) and time.time() < deadline:
        time.sleep(0.2)  # until the per-file jobs have started writing
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    cleaned = work / "results/cyto/flow/clean"
    assert not (cleaned.is_dir() and len(list(cleaned.glob("*.h5ad"))) == 4), "killed too late"

    run_snakemake(work, *UNTIL)  # the same command, no extra flag
    assert not list((work / "results").rglob("*.partial"))
    for sample in ("P1_pre", "P2_pre", "P1_post", "P2_post"):
        table = f"results/qc/cyto/flow/{sample}.tsv"
        assert (work / table).read_bytes() == (whole / table).read_bytes(), table
        a = ad.read_h5ad(work / f"results/cyto/flow/clean/{sample}.h5ad")
        b = ad.read_h5ad(whole / f"results/cyto/flow/clean/{sample}.h5ad")
        assert a.obs.equals(b.obs)
        for layer in ("raw", "compensated", "transformed"):
            np.testing.assert_array_equal(a.layers[layer], b.layers[layer])
