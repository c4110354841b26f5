"""Tests that run the workflow through a live Slurm cluster (tests/slurm/cluster.sh up).

They are skipped, with the reason, when no cluster answers or the executor plugin is not
installed (pip install -e ".[slurm]"), and fail instead when IMMUNOPROFILER_REQUIRE_SLURM=1
(.ci/run sets it after starting the cluster, so CI cannot pass by skipping them)."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess

import pytest


def _cluster_problem() -> str | None:
    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        return 'the Snakemake SLURM executor plugin is not installed (pip install -e ".[slurm]")'
    if shutil.which("sinfo") is None:
        return "no Slurm client here (tests/slurm/cluster.sh install && tests/slurm/cluster.sh up)"
    try:
        subprocess.run(["scontrol", "ping"], check=True, capture_output=True, timeout=10)
        out = subprocess.run(
            ["sinfo", "-h", "-o", "%P"], check=True, capture_output=True, text=True, timeout=10
        )
    except (subprocess.SubprocessError, OSError):
        return "no Slurm controller answers (tests/slurm/cluster.sh up)"
    if not {"cpu*", "gpu"} <= set(out.stdout.split()):
        return f"the cluster lacks the cpu/gpu partitions of tests/slurm/cluster.sh ({out.stdout.split()})"
    return None


@pytest.fixture(scope="session")
def slurm_cluster():
    problem = _cluster_problem()
    if problem and os.environ.get("IMMUNOPROFILER_REQUIRE_SLURM") == "1":
        pytest.fail(f"IMMUNOPROFILER_REQUIRE_SLURM=1 (as in .ci/run) but {problem}")
    if problem:
        pytest.skip(problem)


def sacct(*job_ids: str) -> list[dict[str, str]]:
    fields = [
        "JobID",
        "JobName",
        "Partition",
        "ReqMem",
        "Timelimit",
        "AllocTRES",
        "State",
        "ExitCode",
    ]
    out = subprocess.run(
        ["sacct", "-X", "-P", "-n", "-j", ",".join(job_ids), "-o", ",".join(fields)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return [dict(zip(fields, line.split("|"), strict=True)) for line in out.splitlines() if line]
