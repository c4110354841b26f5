"""Process set-up shared by the workflow's adapters (``scripts/*.py``): logging and thread caps."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path


class _OneLine(logging.Formatter):
    """Console format: the message only, no traceback (that is in the log file)."""

    def format(self, record: logging.LogRecord) -> str:
        record = logging.makeLogRecord({**record.__dict__, "exc_info": None, "exc_text": None})
        return super().format(record)


def configure(
    *, log: str | Path | None, threads: int = 1, numba_cache: str | Path = ".snakemake/numba_cache"
) -> None:
    """Log to ``log`` (and stderr), cap BLAS/OpenMP/numba/torch threads at ``threads``.

    Call it first in an adapter, before scanpy or torch are imported, so the
    numba cache directory and thread caps apply to them. Uncaught exceptions are
    written to the log with their traceback.
    """
    threads = max(int(threads), 1)
    for var in (
        "OMP_NUM_THREADS",
        "OPENBLAS_NUM_THREADS",
        "MKL_NUM_THREADS",
        "NUMBA_NUM_THREADS",
        "DASK_NUM_WORKERS",  # dask's threaded scheduler (read when dask is imported)
    ):
        os.environ[var] = str(threads)
    # OpenMP threads that wait yield the core instead of spinning on it: on a node where
    # another job holds a core, spinning threads slow training many times over
    # (bench/threads_bench.py); an explicit setting in the environment wins
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.setdefault("KMP_BLOCKTIME", "0")
    os.environ.setdefault("NUMBA_CACHE_DIR", str(Path(numba_cache).resolve()))
    os.environ.setdefault("MPLBACKEND", "Agg")
    console = logging.StreamHandler(sys.stderr)
    console.setFormatter(_OneLine("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handlers: list[logging.Handler] = [console]
    if log:
        Path(log).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log, mode="w"))
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=handlers,
        force=True,
    )
    for noisy in ("numba", "matplotlib", "h5py", "fontTools", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    def _hook(exc_type, exc, tb):  # pragma: no cover - exercised by failing workflow jobs
        # one line on the console (the message names the sample, file and cause); the
        # traceback goes to the rule's log only
        logging.getLogger("immunoprofiler").critical(
            "failed: %s", exc, exc_info=(exc_type, exc, tb)
        )

    sys.excepthook = _hook
    from threadpoolctl import threadpool_limits

    # libraries loaded later (torch included: its intra-op pool is sized from
    # OMP_NUM_THREADS at import) read the variables above; torch is not imported here,
    # which would cost every job ~1 s and ~200 MB that most steps never use
    threadpool_limits(threads)
