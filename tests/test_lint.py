"""Static checks that CI must keep clean: snakemake --lint, ruff (lint + format), snakefmt."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT


def run(*cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)


def tool(name: str) -> str:
    """The test extra's command ``name``: beside this Python, or on PATH. Missing is a
    failure, not a skip: the README's test command installs the extras, and a check that
    silently skips is a check CI never ran."""
    beside = Path(sys.executable).with_name(name)
    found = str(beside) if beside.exists() else shutil.which(name)
    assert found, f"{name} is not installed: pip install --no-deps -e '.[test]' (requirements.lock)"
    return found


def test_snakemake_lint():
    proc = run(sys.executable, "-m", "snakemake", "--lint")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Congratulations" in proc.stdout + proc.stderr


@pytest.mark.parametrize("args", [("check", "."), ("format", "--check", ".")])
def test_ruff(args):
    proc = run(tool("ruff"), *args)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_snakefmt():
    proc = run(tool("snakefmt"), "--check", "Snakefile", "workflow/")
    assert proc.returncode == 0, proc.stdout + proc.stderr
