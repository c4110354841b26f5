"""Benchmark: the two state steps at cohort scale, on generated tables (they read tables,
never cells or events).

For N samples (default 1,000: 500 patients, pre and post), writes
- the cytometry marker-median and composition tables: 2 modalities × 20 cell types × 10
  state markers per sample (a planted change in one type × marker), and
- the RNA pseudobulk: 20 cell types × ``--genes`` genes per sample (negative binomial counts,
  20 genes up 2× in one type),
then runs ``profile_differential_state`` and ``profile_differential_expression`` (the rule
functions, paired design), each in a fresh process on ``--threads`` threads: wall time and
peak RSS to OUT/results.json, with whether the planted effects were found.

``--de-method`` picks the DE test (``deseq2``, PyDESeq2; ``limma-trend``).

Usage: python bench/state_bench.py [--samples 1000] [--genes 2000] [--threads 2]
                                   [--steps ds de] [--de-method deseq2]
                                   [--out bench/out_state]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from benchlib import run_measured

TYPES = [f"type{i:02d}" for i in range(20)]
MARKERS = [
    f"p{m}" for m in ("S6", "Erk", "Stat1", "Stat3", "Stat5", "Akt", "Btk", "Plcg2", "NFkB", "38")
]
STEP = """
import sys, json
from immunoprofiler.params import Contrast, DifferentialExpression, DifferentialState
from immunoprofiler import pipeline
step, d, threads, method = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
c = Contrast(column="timepoint", groups=("pre", "post"), paired_by="patient")
sheet = d + "/samples.tsv"
import pandas as pd
samples = pd.read_csv(sheet, sep="\\t")
if step == "ds":
    pipeline.profile_differential_state(d + "/medians.tsv", d + "/composition.tsv",
        samples=samples, table=d + "/ds.tsv", heatmap=d + "/ds.png", volcano=d + "/ds_v.png",
        params=DifferentialState(contrast=c, min_cells=10, marker_classes=("state",)))
else:
    pipeline.profile_differential_expression(d + "/pb.h5ad", samples=samples,
        table=d + "/de.tsv", design=d + "/de_samples.tsv", figure=d + "/de.png",
        params=DifferentialExpression(contrast=c, min_cells=10, method=method), threads=threads)
"""


def generate(out: Path, n: int, genes: int, seed: int = 0) -> None:
    import anndata as ad
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    patients = [f"pt{i:04d}" for i in range(n // 2)]
    sheet = pd.DataFrame(
        [
            {"sample_id": f"{p}_{t}", "modality": m, "patient": p, "timepoint": t}
            for p in patients
            for t in ("pre", "post")
            for m in ("cytof", "flow", "rna")
        ]
    )
    sheet.to_csv(out / "samples.tsv", sep="\t", index=False)
    samples = sheet["sample_id"].unique()
    post = np.array([s.endswith("_post") for s in samples])
    meds, comp = [], []
    for m in ("cytof", "flow"):
        for i, t in enumerate(TYPES):
            base = rng.normal(2, 0.5, size=(len(samples) // 2, 1, len(MARKERS)))
            y = np.repeat(base, 2, axis=1).reshape(len(samples), len(MARKERS))
            y = y + rng.normal(0, 0.1, size=y.shape)
            if i == 0:
                y[post, 0] += 0.5
            for j, mk in enumerate(MARKERS):
                meds.append(
                    pd.DataFrame(
                        {
                            "sample_id": samples,
                            "modality": m,
                            "panel_group": "",
                            "cell_type": t,
                            "marker": mk,
                            "marker_class": "state",
                            "median": y[:, j],
                        }
                    )
                )
            comp.append(
                pd.DataFrame(
                    {
                        "sample_id": samples,
                        "modality": m,
                        "panel_group": "",
                        "cell_type": t,
                        "cell_ontology_id": "",
                        "n_cells": rng.integers(50, 5000, size=len(samples)),
                    }
                )
            )
    pd.concat(meds).to_csv(out / "medians.tsv", sep="\t", index=False)
    pd.concat(comp).to_csv(out / "composition.tsv", sep="\t", index=False)
    mu0 = rng.lognormal(3, 1.5, size=genes)
    blocks, obs = [], []
    for i, t in enumerate(TYPES):
        mu = np.outer(rng.lognormal(0, 0.2, size=len(samples)), mu0)
        if i == 0:
            mu[np.ix_(post, np.arange(20))] *= 2
        disp = 0.1
        blocks.append(sp.csr_matrix(rng.negative_binomial(1 / disp, 1 / (1 + mu * disp))))
        obs.append(pd.DataFrame({"sample_id": samples, "cell_type": t, "n_cells": 200}))
    o = pd.concat(obs, ignore_index=True)
    o.index = o["sample_id"] + "|" + o["cell_type"]
    pb = ad.AnnData(
        X=sp.vstack(blocks).astype(np.int64),
        obs=o,
        var=pd.DataFrame(index=[f"g{i}" for i in range(genes)]),
    )
    pb.write_h5ad(out / "pb.h5ad")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--genes", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", nargs="+", choices=("ds", "de"), default=["ds", "de"])
    ap.add_argument("--de-method", choices=("deseq2", "limma-trend"), default="deseq2")
    ap.add_argument("--out", type=Path, default=Path("bench/out_state"))
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    generate(a.out, a.samples, a.genes)
    res = {"samples": a.samples, "genes": a.genes, "threads": a.threads, "steps": {}}
    if "de" in a.steps:
        res["de_method"] = a.de_method
    for step in a.steps:
        wall, rss = run_measured(
            [sys.executable, "-c", STEP, step, str(a.out), str(a.threads), a.de_method],
            log=a.out / f"{step}.log",
        )
        res["steps"][step] = {"wall_s": round(wall, 1), "peak_rss_mb": round(rss)}
    if "ds" in a.steps:
        ds = pd.read_csv(a.out / "ds.tsv", sep="\t")
        top = ds.sort_values("p_value").iloc[0]
        res["ds_top"] = [top["cell_type"], top["marker"], float(top["q_value"])]
        res["ds_calls_q05"] = int((ds["q_value"] < 0.05).sum())
    if "de" in a.steps:
        de = pd.read_csv(a.out / "de.tsv", sep="\t")
        hits = de[(de["q_value"] < 0.05)]
        planted = hits[hits["cell_type"] == TYPES[0]]["gene"].isin([f"g{i}" for i in range(20)])
        res["de_planted_found"] = int(planted.sum())
        res["de_other_calls_q05"] = int(len(hits) - res["de_planted_found"])
    method = f"_{a.de_method}" if "de" in a.steps else ""
    name = f"results_{a.samples}_{'_'.join(a.steps)}{method}.json"
    (a.out / name).write_text(json.dumps(res, indent=2))
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
