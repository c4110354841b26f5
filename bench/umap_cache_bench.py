"""Benchmark: the first UMAP of a fresh process with numba's cache empty (a run's first
clustering job) and filled (every later one), through ``tl.embedding.umap``.

Each measurement is a new Python process (``--repeats`` of each) that imports the package,
embeds ``--rows`` × 10 random rows and reports its wall time; the cold ones get an empty
``NUMBA_CACHE_DIR`` each, the warm ones the cache a cold one filled. The embeddings of a cold
and a warm process are compared. Results to OUT/results.json.

Usage: python bench/umap_cache_bench.py [--rows 3000] [--repeats 3] [--out bench/out_umap_cache]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

CHILD = """
import sys, numpy as np
from immunoprofiler.tl.embedding import umap
X = np.random.default_rng(0).normal(size=(int(sys.argv[1]), 10)).astype(np.float32)
np.save(sys.argv[2], umap(X, seed=0))
"""


def run(rows: int, cache: Path, out: Path) -> float:
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache), "OMP_NUM_THREADS": "1"}
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", CHILD, str(rows), str(out)], env=env, check=True)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=3000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=Path("bench/out_umap_cache"))
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    cold, warm = [], []
    for i in range(a.repeats):
        cache = a.out / f"cache{i}"
        shutil.rmtree(cache, ignore_errors=True)
        cold.append(run(a.rows, cache, a.out / "cold.npy"))
    for _ in range(a.repeats):
        warm.append(run(a.rows, a.out / "cache0", a.out / "warm.npy"))
    same = bool(np.array_equal(np.load(a.out / "cold.npy"), np.load(a.out / "warm.npy")))
    res = {
        "rows": a.rows,
        "cold_s": [round(x, 1) for x in cold],
        "warm_s": [round(x, 1) for x in warm],
        "same_embedding": same,
    }
    (a.out / "results.json").write_text(json.dumps(res, indent=2))
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
