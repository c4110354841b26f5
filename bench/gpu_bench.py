"""Benchmark: scVI and CytoVI training time per epoch on the CPU and on a GPU, through the
pipeline's own functions (``immunoprofiler.tl.integrate`` behind ``rna_integrate``,
``immunoprofiler.pp.batchnorm.fit_cytovi`` behind ``cyto_normalize``).

scvi: simulates N demo cells (G genes) in B batches with the project's simulator, keeps the real
cells, normalises and selects 2,000 highly variable genes as ``rna_normalize`` does.
cytovi: simulates N CyTOF events in B batches and arcsinh-transforms the type/state markers.
Each model is trained for E epochs on each accelerator asked for (``select_accelerator`` as the
rules do: ``gpu`` fails at once when no CUDA device is visible). Per-epoch time is
(wall of E epochs − wall of 1 epoch) / (E − 1), so set-up and latent extraction are left out.

Usage: python bench/gpu_bench.py [--model scvi cytovi] [--cells 5000] [--genes G] [--batches 2]
                                 [--epochs 50] [--accelerators cpu gpu] [--out bench/out/gpu.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np


def prepare_rna(cells: int, genes: int | None, batches: int, seed: int):
    import anndata as ad
    import scanpy as sc

    from immunoprofiler.datasets import simulate_pbmc

    parts = []
    for b in range(batches):
        a = simulate_pbmc(cells // batches, n_genes=genes, batch=b, n_batches=batches, seed=seed)
        a = a[a.obs["true_state"] == "cell"].copy()
        a.obs["batch"] = f"b{b}"
        parts.append(a)
    adata = ad.concat(parts, index_unique="-")
    adata.layers["counts"] = adata.X.copy()
    sc.pp.normalize_total(adata, target_sum=1e4)
    sc.pp.log1p(adata)
    sc.pp.highly_variable_genes(
        adata, n_top_genes=2000, flavor="seurat_v3", layer="counts", batch_key="batch"
    )
    return adata[:, adata.var["highly_variable"]].copy()


def prepare_cyto(events: int, batches: int, seed: int):
    from immunoprofiler.datasets.cytometry import simulate_cytometry
    from immunoprofiler.io.panel import derive_panel

    parts, labels = [], []
    for b in range(batches):
        X, names, desc, _, _ = simulate_cytometry(
            events // batches, modality="cytof", batch=b, seed=b
        )
        parts.append(X)
        labels += [f"b{b}"] * len(X)
    panel = derive_panel(names, desc, modality="cytof")
    use = panel["marker_class"].isin(["type", "state"]).to_numpy()
    X = np.arcsinh(np.vstack(parts)[:, use] / 5.0).astype(np.float32)
    return X, np.asarray(labels), list(panel.loc[use, "marker"])


def train_seconds(model: str, data, accelerator: str, epochs: int, seed: int) -> float:
    t = time.perf_counter()
    if model == "scvi":
        from immunoprofiler.tl import integrate

        integrate(data.copy(), method="scvi", max_epochs=epochs, seed=seed, accelerator=accelerator)
    else:
        from immunoprofiler.pp.batchnorm import fit_cytovi

        X, batches, markers = data
        fit_cytovi(
            X, batches, markers=markers, max_epochs=epochs, seed=seed, accelerator=accelerator
        )
    return time.perf_counter() - t


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--model", nargs="+", default=["scvi", "cytovi"], choices=["scvi", "cytovi"])
    p.add_argument("--cells", type=int, default=5000, help="cells (scvi) or events (cytovi)")
    p.add_argument("--genes", type=int, default=None, help="simulated genes (default: demo's)")
    p.add_argument("--batches", type=int, default=2)
    p.add_argument("--epochs", type=int, default=50)
    p.add_argument("--accelerators", nargs="+", default=["cpu", "gpu"], choices=["cpu", "gpu"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("bench/out/gpu.json"))
    args = p.parse_args()

    import scvi
    import torch

    from immunoprofiler.accelerator import select_accelerator

    result = {
        "batches": args.batches,
        "epochs": args.epochs,
        "cpu_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "scvi_tools": scvi.__version__,
        "machine": platform.node(),
        "gpu_name": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "runs": {},
    }
    for model in args.model:
        if model == "scvi":
            data = prepare_rna(args.cells, args.genes, args.batches, args.seed)
            shape = data.shape
        else:
            data = prepare_cyto(args.cells, args.batches, args.seed)
            shape = data[0].shape
        runs = result["runs"][model] = {"obs": shape[0], "vars": shape[1]}
        for name in args.accelerators:
            acc = select_accelerator(1 if name == "gpu" else 0)
            train_seconds(model, data, acc, 1, args.seed)  # warm-up (CUDA context, kernels)
            t1 = train_seconds(model, data, acc, 1, args.seed)
            tE = train_seconds(model, data, acc, args.epochs, args.seed)
            per_epoch = (tE - t1) / (args.epochs - 1)
            runs[name] = {
                "wall_1_epoch_s": round(t1, 2),
                f"wall_{args.epochs}_epochs_s": round(tE, 2),
                "s_per_epoch": round(per_epoch, 4),
            }
            print(
                f"{model} {name}: {per_epoch:.3f} s/epoch ({tE:.1f} s / {args.epochs})", flush=True
            )
        if "cpu" in runs and "gpu" in runs:
            runs["gpu_speedup"] = round(runs["cpu"]["s_per_epoch"] / runs["gpu"]["s_per_epoch"], 2)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
