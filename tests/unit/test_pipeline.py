"""The per-rule functions end to end on the demo cohort, including the scANVI annotation path."""

from __future__ import annotations

import json

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from immunoprofiler import pipeline
from immunoprofiler.tl.abundance import COLUMNS
from tests.conftest import MARKERS, step_params


@pytest.fixture(scope="module")
def clustered(demo_cohort):
    work = demo_cohort["work"]
    pipeline.rna_integrate(
        demo_cohort["hvg"],
        work / "int.h5ad",
        model_dir=work / "model",
        params=step_params("rna_integrate", method="harmony"),
    )
    pipeline.rna_cluster(work / "int.h5ad", work / "clu.h5ad", params=step_params("rna_cluster"))
    return work / "clu.h5ad"


def test_integrated_file_links_the_hvg_matrices(clustered, demo_cohort):
    """rna_integrate writes what it adds (embedding, uns); X and the counts are the HVG
    file's, linked."""
    import h5py

    work = demo_cohort["work"]
    with h5py.File(work / "int.h5ad") as f:
        for key in ("X", "layers"):
            assert f.get(key, getlink=True).filename == "hvg.h5ad"
    a, hvg = ad.read_h5ad(work / "int.h5ad"), ad.read_h5ad(demo_cohort["hvg"])
    assert abs(a.layers["counts"] - hvg.layers["counts"]).max() == 0
    assert a.obsm["X_pca_harmony"].shape == (a.n_obs, 50)
    assert a.uns["integration"]["use_rep"] == "X_pca_harmony"
    assert {"rna_normalize", "rna_integrate"} <= set(a.uns["provenance"])
    assert (work / "int.h5ad").stat().st_size < demo_cohort["hvg"].stat().st_size / 3


@pytest.mark.slow
def test_scvi_step_reads_counts_into_memory_or_trains_from_disk(demo_cohort, tmp_path, caplog):
    """scVI through the step: the HVG counts read into memory when they fit a third of the
    job's memory, else trained from disk (each way reproducible); the epochs recorded, none
    of scvi-tools' registry keys in the output."""
    import logging

    def run(name, memory_mb):
        out = tmp_path / f"{name}.h5ad"
        with caplog.at_level(logging.INFO, logger="immunoprofiler"):
            pipeline.rna_integrate(
                demo_cohort["hvg"],
                out,
                model_dir=tmp_path / f"model_{name}",
                params=step_params("rna_integrate", method="scvi", max_epochs=3),
                memory_mb=memory_mb,
            )
        return ad.read_h5ad(out)

    counts_mb = ad.read_h5ad(demo_cohort["hvg"]).layers["counts"].data.nbytes * 2 / 2**20
    disk, again = run("disk", counts_mb), run("again", counts_mb)  # 3 × counts > the job's
    assert caplog.text.count("training from disk") == 2
    memory = run("memory", 100 * counts_mb)
    assert "read into memory" in caplog.text
    np.testing.assert_array_equal(disk.obsm["X_scVI"], again.obsm["X_scVI"])
    for a in (disk, memory):
        assert a.uns["integration"] == {
            "method": "scvi",
            "use_rep": "X_scVI",
            "batch_key": "batch",
            "epochs": 3,
        }
        assert len(a.uns["scvi_elbo_train"]) == 3
        assert not [k for k in a.uns if k.startswith("_scvi")]
        assert not [c for c in a.obs if c.startswith("_scvi")]
    assert (tmp_path / "model_disk" / "model.pt").exists()
    assert not list(demo_cohort["hvg"].parent.glob(".backed_*"))


def test_cluster_with_two_threads_equals_one(clustered, demo_cohort, tmp_path):
    """With 2 threads the uncorrected UMAP runs in a second process: the same file."""
    work = demo_cohort["work"]
    two = tmp_path / "clu2.h5ad"
    pipeline.rna_cluster(work / "int.h5ad", two, params=step_params("rna_cluster"), threads=2)
    one, other = ad.read_h5ad(clustered), ad.read_h5ad(two)
    assert one.n_obs > 2_000  # enough cells for the second process
    for key in ("X_umap", "X_umap_uncorrected"):
        np.testing.assert_array_equal(one.obsm[key], other.obsm[key])
    pd.testing.assert_frame_equal(one.obs, other.obs)
    assert (one.obsp["connectivities"] != other.obsp["connectivities"]).nnz == 0


def _annotate(clustered, demo_cohort, out, **kwargs):
    """``pipeline.rna_annotate`` on the demo cohort clustered by the fixture."""
    return pipeline.rna_annotate(
        clustered,
        demo_cohort["cohort"],
        out,
        integrated=demo_cohort["work"] / "int.h5ad",
        markers=MARKERS,
        **kwargs,
    )


@pytest.mark.slow
def test_markers_chain_outputs(clustered, demo_cohort, tmp_path):
    out = tmp_path / "annotated.h5ad"
    _annotate(clustered, demo_cohort, out, params=step_params("rna_annotate"))
    a = ad.read_h5ad(out)
    cohort = ad.read_h5ad(demo_cohort["cohort"])
    assert (
        abs(a.X - cohort.X).max() == 0 and "counts" in a.layers
    )  # matrices copied, not recomputed
    assert {"X_umap", "X_umap_uncorrected", "X_pca_harmony"} <= set(a.obsm)
    # the demo has fewer than 30,000 cells: all embedded before integration too, differently
    assert np.isfinite(a.obsm["X_umap_uncorrected"]).all()
    assert not np.allclose(a.obsm["X_umap_uncorrected"], a.obsm["X_umap"])
    assert {"rna_integrate", "rna_cluster", "rna_annotate", "rna_normalize"} <= set(
        a.uns["provenance"]
    )
    ann = a.uns["provenance"]["rna_annotate"]
    assert MARKERS.name in ann["inputs"] and json.loads(ann["params"])["method"] == "markers"
    assert (
        json.loads((demo_cohort["work"] / "model" / "integration.json").read_text())["embedding"]
        == "X_pca_harmony"
    )
    comp = pipeline.rna_composition(out, tmp_path / "comp.tsv")
    assert list(comp.columns) == COLUMNS
    np.testing.assert_allclose(comp.groupby("sample_id")["fraction"].sum(), 1)
    figs = {k: tmp_path / f"{k}.png" for k in ("umap", "umap_uncorrected", "dotplot", "abundance")}
    pipeline.rna_plots(out, **figs)
    for path in figs.values():
        assert path.read_bytes()[:4] == b"\x89PNG"
    both = pipeline.concat_tables(
        [tmp_path / "comp.tsv", tmp_path / "comp.tsv"], tmp_path / "all.tsv"
    )
    assert len(both) == 2 * len(comp)


@pytest.mark.slow
def test_scanvi_annotation_step(clustered, demo_cohort, tmp_path):
    cohort = ad.read_h5ad(demo_cohort["cohort"])
    truth = demo_cohort["truth"]
    ref = cohort[cohort.obs["sample_id"] == "P1_pre"].copy()
    ref.obs["cell_type"] = truth.loc[ref.obs_names, "true_cell_type"].to_numpy()
    ref = ref[ref.obs["cell_type"] != "doublet"].copy()
    ref.write_h5ad(tmp_path / "reference.h5ad")
    out = tmp_path / "annotated.h5ad"
    _annotate(
        clustered,
        demo_cohort,
        out,
        params=step_params("rna_annotate", method="scanvi", max_epochs=30),
        reference=tmp_path / "reference.h5ad",
    )
    obs = ad.read_h5ad(out, backed="r").obs
    acc = (obs["cell_type"].astype(str) == truth.loc[obs.index, "true_cell_type"]).mean()
    assert acc > 0.85
    assert (
        "reference.h5ad"
        in ad.read_h5ad(out, backed="r").uns["provenance"]["rna_annotate"]["inputs"]
    )


@pytest.mark.slow
def test_celltypist_annotation_step(clustered, demo_cohort, celltypist_model, tmp_path):
    out = tmp_path / "annotated.h5ad"
    _annotate(
        clustered,
        demo_cohort,
        out,
        params=step_params("rna_annotate", method="celltypist"),
        celltypist_model=celltypist_model,
    )
    obs = ad.read_h5ad(out, backed="r").obs
    truth = demo_cohort["truth"].loc[obs.index, "true_cell_type"]
    assert (obs["cell_type"].astype(str) == truth).mean() > 0.9
    assert set(obs["cell_ontology_id"]) - {"CL:0000000"}  # labels mapped through the marker table


@pytest.mark.slow
def test_annotation_method_errors(clustered, demo_cohort, tmp_path):
    with pytest.raises(ValueError, match=r"needs config rna\.annotate\.reference"):
        _annotate(
            clustered,
            demo_cohort,
            tmp_path / "x.h5ad",
            params=step_params("rna_annotate", method="scanvi"),
        )
    with pytest.raises(ValueError, match="unknown annotation method 'magic'"):
        _annotate(
            clustered,
            demo_cohort,
            tmp_path / "x.h5ad",
            params=step_params("rna_annotate", method="magic"),
        )
    assert not (tmp_path / "x.h5ad").exists()


def test_qc_step_writes_table_and_plot(demo_cohort):
    work = demo_cohort["work"]
    row = pd.read_csv(work / "P1_pre.tsv", sep="\t").iloc[0]
    assert row["sample_id"] == "P1_pre" and row["n_cells_after"] > 0
    assert (work / "P1_pre.png").read_bytes()[:4] == b"\x89PNG"


def test_rna_bam_count_writes_10x_h5_matrices(tmp_path):
    import scanpy as sc

    from immunoprofiler.datasets.bam import write_synthetic_bam
    from immunoprofiler.io.tenx import read_rna

    bam = tmp_path / "s.bam"
    write_synthetic_bam(bam, n_reads=300_000, n_cells=300, n_genes=500, seed=2)
    row = pipeline.rna_bam_count(
        bam,
        out_raw=tmp_path / "raw.h5",
        out_filtered=tmp_path / "filtered.h5",
        table=tmp_path / "s.tsv",
        sample_id="s",
        params=step_params("rna_bam_count", lower=20, cell_calling="inflection"),
        threads=2,
    )
    raw = sc.read_10x_h5(tmp_path / "raw.h5")
    filt = read_rna(tmp_path / "filtered.h5", sample_id="s")
    assert raw.n_obs == row["barcodes"] > filt.n_obs == row["cells"]
    assert 250 <= row["cells"] <= 330  # 300 simulated cells
    assert int(raw.X.sum()) == row["umis"] and 0 < row["sequencing_saturation"] < 1
    assert "gene_ids" in filt.var and filt.var_names[0].startswith("GENE")
    table = pd.read_csv(tmp_path / "s.tsv", sep="\t")
    for col in (
        "reads_total",
        "reads_no_cell",
        "reads_no_umi",
        "reads_counted",
        "umis",
        "cells",
        "median_umis_per_cell",
        "sequencing_saturation",
    ):
        assert col in table, col


def _normalized(path, n, *, batches=("b",)):
    """A small normalised cytometry file: two populations on three type markers."""
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(0, 0.3, (n // 2, 3)), rng.normal(3, 0.3, (n - n // 2, 3))])
    X = X.astype(np.float32)
    obs = pd.DataFrame(
        {
            "sample_id": pd.Categorical(["s1"] * n),
            "batch": pd.Categorical([batches[i % len(batches)] for i in range(n)]),
        },
        index=[str(i) for i in range(n)],
    )
    var = pd.DataFrame(
        {"channel": ["a", "b", "c"], "marker_class": "type"}, index=["CD3", "CD19", "CD14"]
    )
    ad.AnnData(X=X, obs=obs, var=var, layers={"transformed": X.copy()}).write_h5ad(path)


@pytest.mark.slow  # fits FlowSOM, compiles UMAP
def test_a_small_panel_group_is_clustered_on_a_smaller_som_and_says_so(tmp_path):
    from immunoprofiler.failures import SampleError
    from immunoprofiler.tl.flowsom import som_grid

    assert som_grid(100_000, 10, 10) == (10, 10, "")
    _normalized(tmp_path / "n.h5ad", 150)
    pipeline.cyto_cluster(
        tmp_path / "n.h5ad", tmp_path / "c.h5ad", params=step_params("cyto_cluster")
    )
    c = ad.read_h5ad(tmp_path / "c.h5ad")
    assert list(c.uns["flowsom"]["grid"]) == [3, 3]
    assert "reduced to 3×3" in c.uns["flowsom"]["note"] and "150 events" in c.uns["flowsom"]["note"]
    assert "reduced to 3×3" in json.loads(c.uns["provenance"]["cyto_cluster"]["params"])["note"]
    assert c.obs["metacluster"].nunique() >= 2
    with pytest.raises(SampleError, match="too few to cluster"):
        som_grid(3, 10, 10)
