"""Benchmark: Bodenmiller PBMC8 (patients 1-4, Reference → BCR-XL paired by patient), the
cytometry chain as is, with the barcode spillover estimated from the data
(``cyto.spillover: barcodes``) and with each sample's type markers registered
(``cyto.normalize.landmarks: true``).

A 30-minute stimulation should change signalling, not cell numbers. For each run this
writes the differential-abundance calls (cell types at q < 0.05, the mean |Δ fraction|
between a patient's two samples per type, ``unknown`` per sample), the estimated spill
coefficients, and, as a check that needs no clustering, fractions from fixed gates on
channels no barcode touches (T cells: CD3 > 2 on Cd110-114) or far above the compensated
noise (B cells: CD20 > 3 and CD3 < 1).

Usage: python bench/pbmc8_barcode_spill.py [--data ../shared/data] [--cores 2]
                                           [--out bench/out_pbmc8]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
FOLDER = "cytof_bodenmiller2012_pbmc8_patients1-4"


def write_config(work: Path, data: Path, spillover: str | None, landmarks: bool = False) -> None:
    (work / "config").mkdir(parents=True, exist_ok=True)
    rows = [
        {
            "sample_id": f"p{p}_{c}",
            "modality": "cytof",
            "path": str(data / FOLDER / f"PBMC8_30min_patient{p}_{name}.fcs"),
            "batch": "run1",
            "patient": f"patient{p}",
            "condition": c,
        }
        for p in (1, 2, 3, 4)
        for c, name in (("Ref", "Reference"), ("BCRXL", "BCR-XL"))
    ]
    pd.DataFrame(rows).to_csv(work / "config/samples.tsv", sep="\t", index=False)
    cyto = {"normalize": {"method": "none", "landmarks": landmarks}, "spillover": spillover}
    config = {
        "samples": "config/samples.tsv",
        "seed": 0,
        "cyto": cyto,
        "profile": {
            "contrast": {"column": "condition", "groups": ["Ref", "BCRXL"], "paired_by": "patient"}
        },
    }
    (work / "config/config.yaml").write_text(json.dumps(config))  # JSON is YAML


def summarise(work: Path) -> dict:
    import anndata as ad

    da = pd.read_csv(work / "results/profile/differential_abundance.tsv", sep="\t")
    da = da[da["level"] == "cell_type"]
    comp = pd.read_csv(work / "results/cyto/cytof/composition.tsv", sep="\t")
    frac = comp.pivot_table(index="sample_id", columns="cell_type", values="fraction").fillna(0)
    ref = frac.loc[[f"p{p}_Ref" for p in (1, 2, 3, 4)]].to_numpy()
    bcr = frac.loc[[f"p{p}_BCRXL" for p in (1, 2, 3, 4)]].to_numpy()
    delta = pd.Series(np.abs(bcr - ref).mean(axis=0), index=frac.columns)
    a = ad.read_h5ad(work / "results/cyto/cytof/normalized.h5ad")
    X = pd.DataFrame(np.asarray(a.X), columns=a.var_names)
    X["sample_id"] = a.obs["sample_id"].astype(str).to_numpy()
    gates = X.groupby("sample_id").apply(
        lambda d: pd.Series(
            {
                "T (CD3 > 2)": float((d["CD3"] > 2).mean()),
                "B (CD20 > 3, CD3 < 1)": float(((d["CD20"] > 3) & (d["CD3"] < 1)).mean()),
                "CD4 > 2 of T": float((d.loc[d["CD3"] > 2, "CD4"] > 2).mean()),
                "CD4 < 0.5 of T": float((d.loc[d["CD3"] > 2, "CD4"] < 0.5).mean()),
            }
        ),
        include_groups=False,
    )
    return {
        "q05_cell_types": da.loc[da["q_value"] < 0.05, "cell_type"].tolist(),
        "da": da.set_index("cell_type")[["mean_fraction_a", "mean_fraction_b", "q_value"]]
        .round(4)
        .to_dict("index"),
        "mean_abs_delta_fraction": delta.round(4).to_dict(),
        "unknown_per_sample": frac.get("unknown", pd.Series(dtype=float)).round(4).to_dict(),
        "fixed_gates": gates.round(4).to_dict("index"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path("bench/out_pbmc8"))
    a = ap.parse_args()
    res = {}
    runs = (("none", None, False), ("barcodes", "barcodes", False), ("landmarks", None, True))
    for name, spillover, landmarks in runs:
        work = (a.out / name).resolve()
        write_config(work, a.data.resolve(), spillover, landmarks)
        cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile")]
        cmd += ["--directory", str(work), "--cores", str(a.cores), "--nolock"]
        subprocess.run([*cmd, "results/profile/differential_abundance.tsv"], check=True)
        res[name] = summarise(work)
    pairs = pd.read_csv(a.out / "barcodes/results/qc/cyto_spillover/cytof.tsv", sep="\t")
    res["barcodes"]["spill_applied"] = {
        f"{r.source} -> {r.target}": round(r.spill, 5)
        for r in pairs.itertuples()
        if r.spill and r.applied
    }
    res["barcodes"]["spill_not_applied_state_markers"] = {
        f"{r.source} -> {r.target}": round(r.spill, 5)
        for r in pairs.itertuples()
        if r.spill and not r.applied
    }
    (a.out / "results.json").write_text(json.dumps(res, indent=2))
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
