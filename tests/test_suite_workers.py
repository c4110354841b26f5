"""The suite's split over pytest-xdist workers (tests/conftest.py): tests that share the demo
run stay on one worker, every other module is one unit, so no costly shared fixture is built
twice. Checked end to end (xdist, pytest and the conftest's grouping) on a small suite."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.conftest import ROOT

CONFTEST = """
import os
import pytest
from tests.conftest import pytest_itemcollected  # the suite's own grouping


@pytest.fixture(scope="session")
def demo_run():
    return os.environ["PYTEST_XDIST_WORKER"]
"""


def test_tests_sharing_a_run_or_a_module_stay_on_one_worker(tmp_path):
    (tmp_path / "conftest.py").write_text(CONFTEST)
    for name, fixture in (("a", "demo_run"), ("b", "demo_run"), ("c", ""), ("d", "")):
        tests = "".join(f"def test_{name}{i}({fixture}):\n    pass\n\n\n" for i in range(6))
        (tmp_path / f"test_{name}.py").write_text(tests)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-n",
            "2",
            "--dist",
            "loadgroup",
            "-v",
            "-p",
            "no:cacheprovider",
            "-o",
            "addopts=",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    ran = re.findall(r"\[(gw\d)\].*PASSED .*test_(\w)\.py::", proc.stdout)
    assert len(ran) == 24, proc.stdout
    workers = {}
    for worker, module in ran:
        workers.setdefault("demo_run" if module in "ab" else module, set()).add(worker)
    assert all(len(w) == 1 for w in workers.values()), workers  # each group on one worker
