"""Cleaning: Gating-ML / FlowJo gates against the manual labels of FlowSOM's 68983 sample,
and the data-driven gates against the simulator's truth."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from immunoprofiler.pp.gating import file_gates, gate_column, valley
from tests.conftest import preprocess_params, shared

MANUAL = ("CD4 T cells", "CD8 T cells", "B cells", "gd T cells", "NK cells", "NK T cells")


@pytest.fixture(scope="module")
def bal():
    folder = shared("flow_flowsom_68983_mouse_bal_manual_gates")
    labels = pd.read_csv(folder / "gatingResult.csv", header=None)[0].to_numpy()
    return folder, labels


def _f1(pred: np.ndarray, true: np.ndarray) -> float:
    return 2 * (pred & true).sum() / (pred.sum() + true.sum())


def test_gatingml_gates_match_manual_labels(bal):
    folder, labels = bal
    # FlowJo's Gating-ML export fails the schema (extra attributes, no compensation-ref):
    # it is repaired and applied by FlowKit; gate names are FlowJo ids, so each manual
    # population is matched to the gate that reproduces it best
    gates = file_gates(folder / "68983.fcs", folder / "manualGating.xml")
    xml = (folder / "manualGating.xml").read_text()
    assert len(gates) == len(re.findall(r"<gating:\w+Gate\b", xml))  # every gate of the file
    for pop in MANUAL:
        truth = labels == pop
        best = max(gates, key=lambda g: _f1(gates[g], truth))
        f1 = _f1(gates[best], truth)
        agree = (gates[best] == truth).mean()
        # the XML polygons were exported at gateResolution 256 (the workspace's at 1024):
        # the small NK T cell gate loses ~50 of 535 events at its edges (F1 0.93)
        assert f1 >= 0.9 and agree >= 0.995, (pop, best, f1, agree)


def test_flowjo_workspace_gates_match_manual_labels(bal):
    folder, labels = bal
    gates = file_gates(folder / "68983.fcs", folder / "gating.wsp")
    assert {"Lymphocytes", "Singlets", "Singlets2", *MANUAL} <= set(gates)
    for pop in MANUAL:
        truth = labels == pop
        assert _f1(gates[pop], truth) >= 0.99, pop
    # the hierarchy: Singlets inside Lymphocytes, every manually labelled event a singlet
    assert not (gates["Singlets"] & ~gates["Lymphocytes"]).any()
    assert gates["Singlets"][labels != "Unlabeled"].all()
    assert gates["Singlets"].sum() < gates["Lymphocytes"].sum()


def test_clean_with_workspace_keeps_population(bal, tmp_path):
    from immunoprofiler import pipeline

    folder, labels = bal

    def preprocess(out, population):
        return pipeline.cyto_preprocess(
            folder / "68983.fcs",
            out,
            panel_out=tmp_path / "p.tsv",
            table=tmp_path / "qc.tsv",
            sample_id="bal",
            modality="flow",
            metadata={"sample_id": "bal", "batch": "b1"},
            params=preprocess_params(population=population),
            gating=folder / "gating.wsp",
        )

    counts = preprocess(tmp_path / "k.h5ad", "Singlets2")
    import anndata as ad

    obs = ad.read_h5ad(tmp_path / "k.h5ad").obs
    # the events kept are the workspace's Singlets2 gate, which holds every labelled event
    singlets2 = file_gates(folder / "68983.fcs", folder / "gating.wsp")["Singlets2"]
    assert counts.set_index("gate").loc["retained", "events"] == singlets2.sum()
    np.testing.assert_array_equal(obs["retained"].to_numpy(), singlets2)
    assert obs["retained"].to_numpy()[labels != "Unlabeled"].all()
    assert obs[gate_column("NK T cells")].dtype == bool
    assert obs["retained"].sum() == obs[gate_column("Singlets2")].sum()
    with pytest.raises(ValueError, match="gates there") as err:
        preprocess(tmp_path / "k2.h5ad", "Live")
    assert err.value.step == "cyto_clean"  # the stage that failed, for the failure record
    assert not (tmp_path / "k2.h5ad").exists()


def test_valley_finds_the_dip_between_two_modes():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 0.3, 3000), rng.normal(4, 0.3, 600)])
    cut = valley(x, side="high")
    assert 1.0 < cut < 3.0
    assert valley(rng.normal(0, 1, 5000), side="high") is None


@pytest.mark.parametrize("modality", ["cytof", "flow"])
def test_auto_gates_remove_what_is_not_a_live_single_cell(modality, tmp_path):
    from immunoprofiler import pipeline
    from immunoprofiler.datasets.cytometry import simulate_cytometry, write_fcs

    X, names, desc, truth, spill = simulate_cytometry(6000, modality=modality, seed=3)
    write_fcs(tmp_path / "x.fcs", X, names, desc, spillover=spill)
    counts = pipeline.cyto_preprocess(
        tmp_path / "x.fcs",
        tmp_path / "k.h5ad",
        panel_out=tmp_path / "p.tsv",
        table=tmp_path / "qc.tsv",
        sample_id="x",
        modality=modality,
        metadata={"sample_id": "x", "batch": "b"},
        params=preprocess_params(),
    )
    import anndata as ad

    kept = ad.read_h5ad(tmp_path / "k.h5ad").obs["retained"].to_numpy()
    junk = truth["kind"].to_numpy() != "cell"
    assert (kept & junk).sum() / junk.sum() < 0.05  # beads/dead/doublets/debris removed
    assert (kept & ~junk).sum() / (~junk).sum() > 0.95  # good cells kept
    expected = (
        ["all events", "not_bead", "dna", "event_length", "live"]
        if modality == "cytof"
        else ["all events", "in_range", "cells", "singlets", "live"]
    )
    assert list(counts["gate"]) == [*expected, "retained"]
    assert (np.diff(counts["events"].to_numpy()[:-1]) <= 0).all()
