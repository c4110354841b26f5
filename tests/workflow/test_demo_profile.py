"""The cohort layer on the demo: wide and cross-modality tables, differential abundance of the
simulated response effect, pseudobulk, QC status, provenance."""

from __future__ import annotations

import json

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import yaml

from immunoprofiler.datasets.demo import ACTIVATION_GENES, RESPONSE_EFFECT, RESPONSE_STATE

pytestmark = pytest.mark.slow

MODALITIES = ("rna", "cytof", "flow")
ANNOTATED = {
    "rna": "results/rna/annotated.h5ad",
    "cytof": "results/cyto/cytof/annotated.h5ad",
    "flow": "results/cyto/flow/annotated.h5ad",
}


def _read(run, name):
    return pd.read_csv(run / "results/profile" / name, sep="\t")


def test_wide_tables(demo_run):
    comp = _read(demo_run, "composition.tsv")
    for name, level in (
        ("composition_wide.tsv", "cell_type"),
        ("composition_lineage_wide.tsv", "lineage"),
    ):
        wide = _read(demo_run, name)
        assert len(wide) == 12 and set(wide["modality"]) == set(MODALITIES)
        assert {"patient", "timepoint", "response", "batch"} <= set(wide.columns)
        assert "path" not in wide and "panel" not in wide
        types = sorted(comp[level].unique())
        assert set(types) <= set(wide.columns)
        np.testing.assert_allclose(wide[types].sum(axis=1), 1.0, atol=1e-9)
        for m, path in ANNOTATED.items():  # cell counts match the annotated files
            obs = ad.read_h5ad(demo_run / path, backed="r").obs
            n = obs.groupby("sample_id", observed=True).size()
            got = wide[wide["modality"] == m].set_index("sample_id")["n_cells"]
            assert got.sort_index().tolist() == n.sort_index().tolist(), m


def test_cross_modality_lines_up_the_same_samples(demo_run):
    cm = _read(demo_run, "cross_modality.tsv")
    comp = _read(demo_run, "composition.tsv").set_index(["sample_id", "modality", "cell_type"])
    pairs = set(map(tuple, cm[["modality_a", "modality_b"]].drop_duplicates().to_numpy()))
    assert pairs == {("cytof", "flow"), ("cytof", "rna"), ("flow", "rna")}
    assert set(cm["sample_id"]) == {"P1_pre", "P2_pre", "P1_post", "P2_post"}
    for r in cm.sample(40, random_state=0).itertuples():
        for mod, frac in ((r.modality_a, r.fraction_a), (r.modality_b, r.fraction_b)):
            key = (r.sample_id, mod, r.cell_type)
            expected = comp.loc[key, "fraction"] if key in comp.index else 0.0
            assert frac == pytest.approx(expected), key
    sums = cm.groupby(["sample_id", "modality_a", "modality_b"])[
        ["shared_fraction_a", "shared_fraction_b"]
    ].sum()
    np.testing.assert_allclose(sums.to_numpy(), 1.0)
    # the three modalities measured the same simulated blood: concordant
    per_sample = cm.groupby(["sample_id", "modality_a", "modality_b"]).first()
    assert (per_sample["pearson_r"] > 0.8).all(), per_sample["pearson_r"]
    assert (demo_run / "results/profile/figures/cross_modality.png").read_bytes()[:4] == b"\x89PNG"


def test_differential_abundance_finds_the_simulated_effect_only(demo_run):
    da = _read(demo_run, "differential_abundance.tsv")
    effect = set(RESPONSE_EFFECT["R"])
    fine = da[da["level"] == "cell_type"]
    assert set(fine["modality"]) == set(MODALITIES)
    assert (fine["group_a"] == "NR").all() and (fine["group_b"] == "R").all()
    for m, g in fine.groupby("modality"):
        hit = g[g["cell_type"].isin(effect)]
        assert len(hit) == 1 and (hit["q_value"] < 0.05).all() and (hit["coef"] > 0).all(), (m, hit)
        null = g[~g["cell_type"].isin(effect)]
        assert (null["q_value"] >= 0.05).all(), (m, null[["cell_type", "q_value"]])
    assert (demo_run / "results/profile/figures/differential_abundance.png").exists()


def test_state_analyses_find_the_planted_state_effects_only(demo_run):
    """The responder's CD8 T cells carry PD-1 +1 (CyTOF, flow) and an activation program of
    genes (RNA): found at q < 0.05; the other tests quiet (BH at 5 %: a stray call allowed
    among the RNA genes of the other types and the CD8 T genes outside the program)."""
    ds = _read(demo_run, "differential_state.tsv")
    ((pop, shifts),) = RESPONSE_STATE["R"].items()
    assert set(ds["modality"]) == {"cytof", "flow"} and (ds["group_b"] == "R").all()
    hit = ds["cell_type"].eq(pop) & ds["marker"].isin(shifts)
    assert hit.groupby(ds["modality"]).sum().to_dict() == {"cytof": 1, "flow": 1}
    assert (ds.loc[hit, "q_value"] < 0.05).all() and (ds.loc[hit, "logFC"] > 0.5).all(), ds[hit]
    quiet = ds.loc[~hit & (ds["q_value"] < 0.05), ["modality", "cell_type", "marker", "q_value"]]
    assert quiet.empty, quiet
    de = _read(demo_run, "differential_expression.tsv")
    cd8 = de[de["cell_type"] == pop]
    called = set(cd8.loc[cd8["q_value"] < 0.05, "gene"])
    assert len(called & set(ACTIVATION_GENES)) >= len(ACTIVATION_GENES) - 1, called
    assert len(called - set(ACTIVATION_GENES)) <= 1, called
    others = de[(de["cell_type"] != pop) & (de["q_value"] < 0.05)]
    assert len(others) <= 2, others[["cell_type", "gene", "q_value"]]
    used = _read(demo_run, "differential_expression_samples.tsv")
    assert set(used["use"]) <= {"in the test", "fewer than 10 cells"}
    for fig in ("differential_state_heatmap", "differential_state_volcano"):
        assert (demo_run / f"results/profile/figures/{fig}.png").exists()
    assert (demo_run / "results/profile/figures/differential_expression_top.png").exists()


def test_pseudobulk_sums_the_annotated_cells(demo_run):
    pb = ad.read_h5ad(demo_run / "results/profile/pseudobulk/rna_counts.h5ad")
    cells = _read(demo_run, "pseudobulk/rna_cells.tsv")
    assert len(cells) == pb.n_obs and {"sample_id", "cell_type", "n_cells", "response"} <= set(
        cells.columns
    )
    annotated = ad.read_h5ad(demo_run / ANNOTATED["rna"])
    n = annotated.obs.groupby(["sample_id", "cell_type"], observed=True).size()
    got = pb.obs.set_index(["sample_id", "cell_type"])["n_cells"]
    assert got.sort_index().to_dict() == n[n > 0].sort_index().to_dict()
    # the demo keeps all its genes as HVGs: pseudobulk equals summing the annotated counts
    row = pb.obs_names[0]
    s, t = row.split("|")
    mask = ((annotated.obs["sample_id"] == s) & (annotated.obs["cell_type"] == t)).to_numpy()
    expected = np.asarray(annotated.layers["counts"][mask].sum(axis=0)).ravel()
    got_row = pb[row, annotated.var_names].X.toarray().ravel()
    np.testing.assert_array_equal(got_row, expected)


def test_qc_status_and_provenance(demo_run):
    st = _read(demo_run, "qc_status.tsv")
    assert len(st) == 12 and st["passed"].all(), st
    prov = _read(demo_run, "provenance.tsv")
    steps = set(prov["step"].str.split(":").str[0])
    assert {
        "rna_ingest",
        "rna_qc",
        "rna_integrate",
        "rna_annotate",
        "cyto_ingest",
        "cyto_clean",
        "cyto_annotate",
    } <= steps
    steps_only = prov[prov["step"] != "environment"]
    assert steps_only["versions"].str.contains("scanpy").all()
    # the installed packages against requirements.lock, its checksum in the table
    env = _read(demo_run, "environment.tsv")
    assert {"scanpy", "anndata", "snakemake"} <= set(env["package"])
    assert set(env["status"]) <= {"same", "different", "not installed"}
    row = prov.set_index("step").loc["environment"]
    assert len(json.loads(row["inputs"])["requirements.lock"]) == 64
    n_diff = json.loads(row["params"])["packages_differing_from_lock"]
    assert n_diff == int((env["status"] != "same").sum())
    assert prov.loc[prov["step"].str.startswith("rna_ingest"), "inputs"].str.len().gt(10).all()
    cfg = yaml.safe_load((demo_run / "results/profile/config_used.yaml").read_text())
    assert cfg["profile"]["contrast"]["column"] == "response" and cfg["seed"] == 0
