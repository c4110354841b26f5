"""The whole workflow (scRNA-seq, CyTOF, flow) on the embedded demo, in an empty working
directory."""

from __future__ import annotations

import json

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from immunoprofiler import provenance
from immunoprofiler.tl.abundance import COLUMNS
from immunoprofiler.tl.annotation import LINEAGES
from tests.conftest import dot_test_config

pytestmark = pytest.mark.slow

STEPS = ("rna_ingest", "rna_qc", "rna_normalize", "rna_integrate", "rna_cluster", "rna_annotate")


def test_outputs_and_slots(demo_run):
    a = ad.read_h5ad(demo_run / "results/rna/annotated.h5ad")
    assert "counts" in a.layers
    np.testing.assert_array_equal(a.layers["counts"].data, np.round(a.layers["counts"].data))
    assert a.X.max() < 15  # shifted log, not counts
    for key in ("X_scVI", "X_umap"):
        assert key in a.obsm
    cap = dot_test_config("demo")["demo"]["scvi_max_epochs"]
    assert a.uns["integration"]["epochs"] == cap  # the demo's own cap (demo.scvi_max_epochs)
    for col in (
        "sample_id",
        "batch",
        "patient",
        "timepoint",
        "condition",
        "pct_counts_mt",
        "doublet_score",
        "leiden",
        "cell_type",
        "cell_ontology_id",
        "lineage",
        "cell_type_score",
    ):
        assert col in a.obs, col
    assert set(a.obs["lineage"]) <= set(LINEAGES)
    assert a.var["highly_variable"].sum() > 0
    prov = provenance.read(demo_run / "results/rna/annotated.h5ad")
    for step in STEPS:
        assert any(k.split(":")[0] == step for k in prov), step
    ingest = prov["rna_ingest:P1_pre"]
    assert len(next(iter(ingest["inputs"].values()))) == 64  # sha256 of the raw input
    assert json.loads(prov["rna_integrate"]["params"])["method"] == "scvi"
    assert (demo_run / "results/rna/integrate_model/model.pt").exists()
    for png in (
        "results/rna/figures/umap.png",
        "results/rna/figures/marker_dotplot.png",
        "results/qc/rna/P1_pre.png",
    ):
        assert (demo_run / png).read_bytes()[:4] == b"\x89PNG"
    assert (demo_run / "logs/rna_qc/P1_pre.log").exists()
    assert (demo_run / "benchmarks/rna_integrate/rna_integrate.tsv").exists()


def test_annotation_matches_ground_truth(demo_run):
    obs = ad.read_h5ad(demo_run / "results/rna/annotated.h5ad", backed="r").obs
    truth = pd.read_csv(demo_run / "resources/demo/truth.tsv.gz", sep="\t")
    truth.index = truth["sample_id"] + "_" + truth["barcode"]
    agreement = (obs["cell_type"].astype(str) == truth.loc[obs.index, "true_cell_type"]).mean()
    assert agreement >= 0.95, (
        f"annotation agrees with the simulator for {agreement:.3f} of QC-passing cells"
    )


def test_batches_are_mixed(demo_run):
    from sklearn.neighbors import NearestNeighbors

    a = ad.read_h5ad(demo_run / "results/rna/annotated.h5ad", backed="r")
    emb = np.asarray(a.obsm["X_scVI"])
    idx = NearestNeighbors(n_neighbors=16).fit(emb).kneighbors(emb, return_distance=False)[:, 1:]
    batch = a.obs["batch"].astype(str).to_numpy()
    assert (
        batch[idx] != batch[:, None]
    ).mean() > 0.35  # 0.5 is perfect mixing of two equal batches


def test_qc_table(demo_run):
    qc = pd.read_csv(demo_run / "results/qc/rna_qc.tsv", sep="\t")
    assert list(qc["sample_id"]) == ["P1_pre", "P2_pre", "P1_post", "P2_post"]
    for col in (
        "n_cells_before",
        "n_cells_after",
        "n_doublets",
        "min_total_counts",
        "max_pct_mt",
        "median_total_counts",
        "median_n_genes",
    ):
        assert col in qc
    assert (qc["n_cells_after"] < qc["n_cells_before"]).all()
    assert (qc["n_doublets"] > 0).all()


def test_composition(demo_run):
    comp = pd.read_csv(demo_run / "results/profile/composition.tsv", sep="\t")
    assert list(comp.columns) == COLUMNS
    assert set(comp["sample_id"]) == {"P1_pre", "P2_pre", "P1_post", "P2_post"}
    assert set(comp["modality"]) == {"rna", "cytof", "flow"}
    np.testing.assert_allclose(comp.groupby(["sample_id", "modality"])["fraction"].sum(), 1.0)
    for modality, path in [("rna", "results/rna/annotated.h5ad")] + [
        (m, f"results/cyto/{m}/annotated.h5ad") for m in ("cytof", "flow")
    ]:
        obs = ad.read_h5ad(demo_run / path, backed="r").obs
        assert comp.loc[comp["modality"] == modality, "n_cells"].sum() == len(obs), modality


@pytest.mark.parametrize("modality", ["cytof", "flow"])
def test_cytometry_outputs_and_ground_truth(demo_run, modality):
    a = ad.read_h5ad(demo_run / f"results/cyto/{modality}/annotated.h5ad")
    prov = provenance.read(demo_run / f"results/cyto/{modality}/annotated.h5ad")
    for col in (
        "sample_id",
        "batch",
        "patient",
        "timepoint",
        "metacluster",
        "som_node",
        "cell_type",
        "cell_ontology_id",
        "lineage",
    ):
        assert col in a.obs, col
    assert set(a.obs["lineage"]) <= set(LINEAGES)
    assert "transformed" in a.layers and "X_umap" in a.obsm
    for step in (
        "cyto_ingest:P1_pre",
        "cyto_clean:P2_post",
        "cyto_normalize",
        "cyto_cluster",
        "cyto_annotate",
    ):
        assert step in prov, step
    ingest = prov["cyto_ingest:P1_pre"]
    assert len(next(iter(ingest["inputs"].values()))) == 64
    truth = pd.read_csv(demo_run / "resources/demo/cyto_truth.tsv.gz", sep="\t")
    truth = truth[truth["modality"] == modality]
    truth.index = truth["sample_id"] + "_" + truth["event"].astype(str)
    # each event found by its sample and its number in the FCS file
    t = truth.loc[a.obs["sample_id"].astype(str) + "_" + a.obs["event"].astype(str)]
    assert (t["kind"] == "cell").mean() > 0.99  # beads, dead cells, doublets, debris removed
    cells = (t["kind"] == "cell").to_numpy()
    agreement = (
        a.obs["cell_type"].astype(str).to_numpy()[cells] == t["true_cell_type"].to_numpy()[cells]
    ).mean()
    assert agreement >= 0.95, f"{modality}: {agreement:.3f} of retained events"
    for png in ("metacluster_heatmap", "umap", "abundance"):
        assert (demo_run / f"results/cyto/{modality}/figures/{png}.png").read_bytes()[
            :4
        ] == b"\x89PNG"
    panel = pd.read_csv(demo_run / f"results/cyto/{modality}/panels/P1_pre.tsv", sep="\t")
    assert {"channel", "marker", "marker_class", "cofactor"} <= set(panel.columns)


def test_cytometry_qc_batch_and_medians_tables(demo_run):
    qc = pd.read_csv(demo_run / "results/qc/cyto_qc.tsv", sep="\t")
    assert list(qc.columns) == ["sample_id", "modality", "gate", "events", "fraction"]
    assert set(qc["modality"]) == {"cytof", "flow"}
    assert {"not_bead", "dna", "live", "singlets", "cells", "retained"} <= set(qc["gate"])
    batch = pd.read_csv(demo_run / "results/qc/cyto_batch.tsv", sep="\t")
    per_marker = batch.groupby("marker")[["emd_before", "emd_after"]].mean()
    assert (per_marker["emd_after"] < per_marker["emd_before"]).mean() > 0.75
    med = pd.read_csv(demo_run / "results/profile/pseudobulk/marker_medians.tsv", sep="\t")
    assert list(med.columns) == [
        "sample_id",
        "modality",
        "panel_group",
        "cell_type",
        "marker",
        "marker_class",
        "median",
    ]
    assert set(med["modality"]) == {"cytof", "flow"} and set(med["marker_class"]) == {
        "type",
        "state",
    }


def test_fastq_sample_counted_as_simulated(demo_run):
    """The demo's FASTQ sample (P2_post: 10x v3 reads in two lanes, chemistry and whitelist
    found from the reads) counted by kallisto | bustools: its barcodes found and its UMIs
    recovered against the simulated counts the reads were drawn from."""
    from immunoprofiler.io.tenx import read_10x_h5

    raw = read_10x_h5(demo_run / "results/rna/fastq_counts/P2_post/raw_feature_bc_matrix.h5")
    truth = ad.read_h5ad(demo_run / "resources/demo/P2_post/counts.h5ad")
    found = truth.obs_names.isin(raw.obs_names)
    assert found.mean() >= 0.99  # cell barcodes right after one-mismatch correction
    sub = raw[truth.obs_names[found]]
    cols = pd.Index(sub.var["gene_ids"]).get_indexer(truth.var["gene_ids"])
    ratio = sub.X[:, cols].sum() / truth.layers["counts"][found].sum()
    assert 0.98 <= ratio <= 1.03, ratio  # kallisto counts a UMI with an error twice (~1 %)
    qc = pd.read_csv(demo_run / "results/qc/starsolo.tsv", sep="\t").set_index("sample_id")
    row = qc.loc["P2_post"]
    assert row["chemistry"] == "10xv3" and row["quantifier"] == "kallisto" and row["files"] == 4
    assert row["valid_barcodes"] > 0.95 and row["cells"] > 0.9 * (truth.n_obs * 0.92)
    # the sample goes on through the chain: its cells are annotated
    obs = ad.read_h5ad(demo_run / "results/rna/annotated.h5ad", backed="r").obs
    assert (obs["sample_id"] == "P2_post").sum() > 0.8 * truth.n_obs
