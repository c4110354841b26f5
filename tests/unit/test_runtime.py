"""Adapter set-up: logging to the rule's log file, thread caps. Run in a fresh process, as every
job's adapter is: configure() changes process-wide state (environment, thread pools)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

CHILD = """
import json, logging, os, sys
from immunoprofiler.runtime import configure
configure(log=sys.argv[1], threads=1, numba_cache=sys.argv[2])
logging.getLogger("immunoprofiler.test").info("hello from a step")
from threadpoolctl import threadpool_info
import torch
print(json.dumps({
    "omp": os.environ["OMP_NUM_THREADS"],
    "wait": os.environ["OMP_WAIT_POLICY"],
    "numba_cache": os.environ["NUMBA_CACHE_DIR"],
    "pools": [p["num_threads"] for p in threadpool_info()],
    "torch": torch.get_num_threads(),
}))
raise ValueError("sample S1: something is wrong")
"""


def test_configure_logs_and_caps_threads(tmp_path):
    log = tmp_path / "logs" / "step.log"
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CACHE_DIR", "OMP_WAIT_POLICY")}
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(log), str(tmp_path / "numba")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["omp"] == "1" and out["torch"] == 1 and set(out["pools"]) == {1}
    assert out["wait"] == "PASSIVE"  # waiting threads yield the core (busy nodes)
    assert out["numba_cache"] == str((tmp_path / "numba").resolve())
    text = log.read_text()
    assert "hello from a step" in text
    # an uncaught error is logged with its message (the job then fails)
    assert proc.returncode != 0 and "failed: sample S1: something is wrong" in text
    assert "Traceback (most recent call last)" in text  # the log has the traceback...
    lines = [ln for ln in proc.stderr.splitlines() if "sample S1" in ln or "Traceback" in ln]
    assert len(lines) == 1 and lines[0].endswith("failed: sample S1: something is wrong")
