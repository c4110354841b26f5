"""Run the workflow with `snakemake --directory` in a fresh folder, as a user would."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import CPUS, ROOT


def snakemake_cmd(workdir: Path, *args: str) -> list[str]:
    """The workflow's Snakemake command line for ``workdir`` (this worker's CPUs, no lock)."""
    return [
        sys.executable,
        "-m",
        "snakemake",
        "-s",
        str(ROOT / "Snakefile"),
        "--directory",
        str(workdir),
        "--cores",
        str(CPUS),
        "--nolock",
        "--show-failed-logs",
        *args,
    ]


def run_snakemake(
    workdir: Path,
    *args: str,
    config: dict | None = None,
    check: bool = True,
    timeout: int = 1200,
    env: dict | None = None,
):
    cmd = snakemake_cmd(workdir, *args)
    config = dict(config or {})
    flat = {k: v for k, v in config.items() if not isinstance(v, dict)}
    nested = {k: v for k, v in config.items() if isinstance(v, dict)}
    if nested:  # nested keys go through a config file, as a user would write them
        cfg = workdir.parent / f"{workdir.name}.config.yaml"
        cfg.write_text(yaml.safe_dump(nested))
        cmd += ["--configfile", str(cfg)]
    if flat:
        cmd += ["--config", *(f"{k}={v}" for k, v in flat.items())]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    if check and proc.returncode != 0:
        pytest.fail(
            f"snakemake failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}"
        )
    return proc
