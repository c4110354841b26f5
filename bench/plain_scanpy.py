"""The same RNA chain as the pipeline, written as one plain single-process scanpy script.

This is the baseline of bench/rna_bench.py: per-sample QC (MAD outliers, scrublet), concatenation,
shifted-log normalisation, batch-aware seurat_v3 HVGs, PCA, Harmony, neighbours, Leiden, UMAP,
marker-based annotation, one annotated .h5ad written. Same parameters as the pipeline's defaults.
Prints the seconds since its imports at the end of each phase (rna_bench.py keeps them in plain.log).

Usage: python bench/plain_scanpy.py SHEET.tsv OUT.h5ad MARKERS.tsv
"""

from __future__ import annotations

import sys
import time

import anndata as ad
import harmonypy
import numpy as np
import pandas as pd
import scanpy as sc
from scipy.stats import median_abs_deviation

from immunoprofiler.tl.annotation import annotate, read_marker_table

T0 = time.perf_counter()


def lap(step: str) -> None:
    """Seconds since the start when ``step`` ends (to the log: where the time goes)."""
    print(f"{time.perf_counter() - T0:8.1f} s  {step}", flush=True)


def is_outlier(x: np.ndarray, n: float) -> np.ndarray:
    med, mad = np.median(x), median_abs_deviation(x)
    return (x < med - n * mad) | (x > med + n * mad)


def main(sheet: str, out: str, markers: str) -> None:
    rows = pd.read_csv(sheet, sep="\t")
    parts = []
    for r in rows.itertuples():
        a = ad.read_h5ad(r.path)
        a.X = a.layers.pop("counts")
        a.obs_names = [f"{r.sample_id}_{b}" for b in a.obs_names]
        a.obs["sample_id"], a.obs["batch"] = r.sample_id, r.batch
        a.var["mt"] = a.var_names.str.startswith("MT-")
        a.var["ribo"] = a.var_names.str.startswith(("RPS", "RPL"))
        a.var["hb"] = a.var_names.str.contains(r"^HB[^(P)]")
        sc.pp.calculate_qc_metrics(
            a, qc_vars=["mt", "ribo", "hb"], percent_top=None, log1p=True, inplace=True
        )
        mt = a.obs["pct_counts_mt"].to_numpy()
        bad = (
            is_outlier(a.obs["log1p_total_counts"].to_numpy(), 5)
            | is_outlier(a.obs["log1p_n_genes_by_counts"].to_numpy(), 5)
            | (mt > min(np.median(mt) + 3 * median_abs_deviation(mt), 20))
            | (a.obs["n_genes_by_counts"].to_numpy() < 100)
        )
        a = a[~bad].copy()
        # same neighbour search as the pipeline (exact below 100k cells: ~4x faster than pynndescent)
        sc.pp.scrublet(
            a,
            expected_doublet_rate=0.06,
            use_approx_neighbors=a.n_obs >= 100_000,
            random_state=0,
            verbose=False,
        )
        a = a[~a.obs["predicted_doublet"].to_numpy()].copy()
        parts.append(a)
        lap(f"QC of {r.sample_id} (metrics, outliers, scrublet)")
    adata = ad.concat(parts, merge="same")
    del parts
    adata.layers["counts"] = adata.X.copy()
    sc.pp.normalize_total(adata, target_sum=1e4)
    sc.pp.log1p(adata)
    sc.pp.highly_variable_genes(
        adata, flavor="seurat_v3", n_top_genes=2000, batch_key="batch", layer="counts"
    )
    lap("concatenation, normalisation, HVGs")
    hv = adata[:, adata.var["highly_variable"].to_numpy()].copy()
    sc.pp.pca(hv, n_comps=50, random_state=0)
    ho = harmonypy.run_harmony(
        hv.obsm["X_pca"], hv.obs[["batch"]], ["batch"], random_state=0, verbose=False
    )
    z = np.asarray(ho.Z_corr)
    hv.obsm["X_pca_harmony"] = z if z.shape[0] == hv.n_obs else z.T
    lap("PCA, Harmony")
    sc.pp.neighbors(hv, use_rep="X_pca_harmony", n_neighbors=15, random_state=0)
    lap("neighbours")
    sc.tl.leiden(
        hv, resolution=1.0, flavor="igraph", n_iterations=2, directed=False, random_state=0
    )
    sc.tl.umap(hv, min_dist=0.5, random_state=0)
    lap("Leiden, UMAP")
    adata.obs["leiden"] = hv.obs["leiden"]
    adata.obsm["X_umap"] = hv.obsm["X_umap"]
    adata.obsm["X_pca_harmony"] = hv.obsm["X_pca_harmony"]
    adata.obsp["connectivities"] = hv.obsp["connectivities"]
    annotate(adata, markers=read_marker_table(markers), cluster_key="leiden")
    del adata.obsp["connectivities"]
    adata.write_h5ad(out)
    lap("annotation, written")


if __name__ == "__main__":
    main(*sys.argv[1:4])
