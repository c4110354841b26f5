"""Adapter set-up: logging to the rule's log file, thread caps."""

from __future__ import annotations

import logging
import os

from immunoprofiler.runtime import configure


def test_configure_logs_and_caps_threads(tmp_path, monkeypatch):
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    log = tmp_path / "logs" / "step.log"
    configure(log=log, threads=1, numba_cache=tmp_path / "numba")
    logging.getLogger("immunoprofiler.test").info("hello from a step")
    assert "hello from a step" in log.read_text()
    assert os.environ["OMP_NUM_THREADS"] == "1"
    assert os.environ["NUMBA_CACHE_DIR"] == str((tmp_path / "numba").resolve())
    from threadpoolctl import threadpool_info

    assert all(p["num_threads"] == 1 for p in threadpool_info())
    logging.getLogger().handlers.clear()
