"""Benchmark: scVI training speed per epoch with 1 and 2 threads, on an idle machine and with a
competing process busy on one core, with OpenMP threads that yield when they wait (what
``immunoprofiler.runtime.configure`` sets: ``OMP_WAIT_POLICY=PASSIVE``) and with spinning
threads (``OMP_WAIT_POLICY=ACTIVE``, the behaviour before).

Each case runs in a fresh process that sets up like a rule's adapter (``configure(threads=T)``)
and trains the pipeline's own ``integrate(method="scvi")`` on the same simulated cells;
per-epoch time is (wall of E epochs − wall of 1 epoch) / (E − 1).

Usage: python bench/threads_bench.py [--cells 4000] [--epochs 8] [--out bench/out/threads.json]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import subprocess
import sys
import time
from pathlib import Path

CHILD = r"""
import json, sys, time
from immunoprofiler.runtime import configure
threads, epochs, data = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
configure(log=None, threads=threads)
import anndata as ad
from immunoprofiler.tl import integrate
adata = ad.read_h5ad(data)

def train(n):
    t = time.perf_counter()
    integrate(adata.copy(), method="scvi", max_epochs=n, seed=0)
    return time.perf_counter() - t

train(1)  # warm-up
t1, tE = train(1), train(epochs)
print(json.dumps({"s_per_epoch": (tE - t1) / (epochs - 1)}))
"""


def busy() -> None:
    while True:
        pass


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--cells", type=int, default=4000)
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--out", type=Path, default=Path("bench/out/threads.json"))
    args = p.parse_args()

    sys.path.insert(0, str(Path(__file__).parent))
    from gpu_bench import prepare_rna

    args.out.parent.mkdir(parents=True, exist_ok=True)
    data = args.out.with_suffix(".h5ad")
    adata = prepare_rna(args.cells, None, 2, 0)
    adata.write_h5ad(data)
    result = {
        "cells": adata.n_obs,
        "genes": adata.n_vars,
        "epochs": args.epochs,
        "cpu_cores": os.cpu_count(),
        "runs": [],
    }
    for load in (False, True):
        hog = mp.Process(target=busy, daemon=True) if load else None
        if hog:
            hog.start()
            time.sleep(1)
        try:
            for policy in ("PASSIVE", "ACTIVE"):
                for threads in (1, 2):
                    env = {**os.environ, "OMP_WAIT_POLICY": policy}
                    cmd = [sys.executable, "-c", CHILD, str(threads), str(args.epochs), str(data)]
                    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
                    s = json.loads(out.stdout.strip().splitlines()[-1])["s_per_epoch"]
                    run = {
                        "competing_process": load,
                        "omp_wait_policy": policy,
                        "threads": threads,
                        "s_per_epoch": round(s, 3),
                    }
                    result["runs"].append(run)
                    print(run, flush=True)
        finally:
            if hog:
                hog.terminate()
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
