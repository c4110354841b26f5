"""The README's quick start: exactly two commands, and CI runs the same test command."""

from __future__ import annotations

import re

from tests.conftest import ROOT


def quick_start_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return [b.strip() for b in re.findall(r"```bash\n(.*?)```", section, flags=re.S)]


def test_two_quick_start_commands():
    cmds = quick_start_commands()
    assert len(cmds) == 2
    assert all("\n" not in c for c in cmds)
    assert "snakemake --cores 2" in cmds[0] and "torch==2.13.0" in cmds[0]
    assert "pytest" in cmds[1] and ".[test]" in cmds[1]


def test_ci_runs_the_readme_test_command():
    test_cmd = quick_start_commands()[1].split(";", 1)[1].strip()  # after activating the venv
    assert test_cmd in (ROOT / ".ci" / "run").read_text()
