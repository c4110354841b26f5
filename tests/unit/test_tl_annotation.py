"""Annotation: marker table checks, accuracy on the demo, unknowns, CellTypist and scANVI paths."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from immunoprofiler.io.h5ad import read_columns
from immunoprofiler.tl.annotation import (
    LINEAGES,
    annotate,
    annotate_celltypist,
    annotate_scanvi,
    marker_genes,
    read_marker_table,
)
from immunoprofiler.tl.clustering import cluster
from immunoprofiler.tl.integration import integrate
from tests.conftest import MARKERS, ROOT

REQUIRED_TYPES = {
    "CD4 T cell",
    "CD8 T cell",
    "regulatory T cell",
    "gamma-delta T cell",
    "MAIT cell",
    "NK cell",
    "B cell",
    "plasma cell",
    "classical monocyte",
    "non-classical monocyte",
    "conventional dendritic cell",
    "plasmacytoid dendritic cell",
    "platelet",
    "erythrocyte",
    "progenitor",
}


@pytest.fixture(scope="module")
def table():
    return read_marker_table(MARKERS)


@pytest.fixture(scope="module")
def clustered(demo_cohort, table):
    hv = ad.read_h5ad(demo_cohort["hvg"])
    integrate(hv, method="harmony", seed=0)
    cluster(hv, use_rep="X_pca_harmony", seed=0)
    genes = [
        g
        for g in marker_genes(table)
        if g in ad.read_h5ad(demo_cohort["cohort"], backed="r").var_names
    ]
    sub = ad.AnnData(
        X=read_columns(demo_cohort["cohort"], genes),
        obs=hv.obs.copy(),
        var=pd.DataFrame(index=genes),
    )
    sub.obsp["connectivities"] = hv.obsp["connectivities"]
    sub.obsm["X_umap"] = hv.obsm["X_umap"]
    return sub


def test_marker_table_contents(table):
    assert REQUIRED_TYPES <= set(table["cell_type"])
    assert set(table["lineage"]) <= set(LINEAGES)
    assert table["cell_ontology_id"].str.match(r"^CL:\d{7}$").all()


def test_marker_table_errors(tmp_path):
    bad = tmp_path / "m.tsv"
    bad.write_text(
        "cell_type\tcell_ontology_id\tlineage\tpositive\tnegative\nX\tCL:1\talien\tCD3E\t\n"
    )
    with pytest.raises(ValueError, match="unknown lineage"):
        read_marker_table(bad)
    bad.write_text("cell_type\tcell_ontology_id\tlineage\tpositive\tnegative\nX\tCL:1\tother\t\t\n")
    with pytest.raises(ValueError, match="'X' has no positive markers"):
        read_marker_table(bad)


def test_demo_annotation_matches_truth(clustered, table, demo_cohort):
    a = clustered.copy()
    annotate(a, markers=table, seed=0)
    truth = demo_cohort["truth"].loc[a.obs_names, "true_cell_type"]
    agreement = (a.obs["cell_type"].astype(str) == truth).mean()
    assert agreement >= 0.95, agreement
    for col in ("cell_type", "cell_ontology_id", "lineage", "cell_type_score"):
        assert col in a.obs
    assert set(a.obs["lineage"]) <= set(LINEAGES)
    ct = table.set_index("cell_type")
    first = a.obs.iloc[0]
    assert first["cell_ontology_id"] == ct.at[first["cell_type"], "cell_ontology_id"]
    assert isinstance(a.uns["annotation"]["groups"], pd.DataFrame)


def test_mixed_cluster_is_split(clustered, table, demo_cohort):
    a = clustered.copy()
    truth = demo_cohort["truth"].loc[a.obs_names, "true_cell_type"]
    # merge the clusters holding CD4 T and regulatory T cells into one label
    merged = {
        a.obs.loc[truth == t, "leiden"].value_counts().index[0]
        for t in ("CD4 T cell", "regulatory T cell")
    }
    assert len(merged) == 2
    leiden = a.obs["leiden"].astype(str)
    a.obs["leiden"] = leiden.where(~leiden.isin(merged), "merged").astype("category")
    annotate(a, markers=table, seed=0)
    treg = (truth == "regulatory T cell").to_numpy()
    assert (a.obs.loc[treg, "cell_type"] == "regulatory T cell").mean() > 0.9
    assert a.obs.loc[treg, "annotation_group"].astype(str).str.startswith("merged.").all()


def test_cluster_without_markers_is_unknown(clustered, table):
    a = clustered.copy()
    b_cells = a.obs_names[np.asarray((a[:, "MS4A1"].X > 0).todense()).ravel()]
    # erase every marker in one cluster: it must come back unknown, not forced into a type
    target = a.obs.loc[b_cells, "leiden"].value_counts().index[0]
    mask = (a.obs["leiden"] == target).to_numpy()
    X = a.X.tolil()
    X[np.flatnonzero(mask), :] = 0
    a.X = X.tocsr()
    annotate(a, markers=table, seed=0)
    assert (a.obs.loc[mask, "cell_type"] == "unknown").all()
    assert (a.obs.loc[mask, "lineage"] == "unknown").all()
    assert (a.obs.loc[mask, "cell_ontology_id"] == "CL:0000000").all()


def test_celltypist_with_a_model_file(clustered, table, demo_cohort, celltypist_model):
    a = clustered.copy()
    truth = demo_cohort["truth"].loc[a.obs_names, "true_cell_type"]
    q = ad.read_h5ad(demo_cohort["cohort"])
    q.obs["leiden"] = a.obs["leiden"]
    annotate_celltypist(q, model=celltypist_model, markers=table, cluster_key="leiden")
    assert (q.obs["cell_type"].astype(str) == truth).mean() > 0.9
    assert q.obs.loc[q.obs["cell_type"] == "B cell", "lineage"].eq("B cell").all()


@pytest.mark.slow
def test_scanvi_label_transfer(demo_cohort, table):
    hv = ad.read_h5ad(demo_cohort["hvg"])
    truth = demo_cohort["truth"]
    ref = hv[hv.obs["sample_id"] == "P1_pre"].copy()
    ref.obs["label"] = truth.loc[ref.obs_names, "true_cell_type"].to_numpy()
    ref = ref[ref.obs["label"] != "doublet"].copy()
    q = hv[hv.obs["sample_id"] != "P1_pre"].copy()
    annotate_scanvi(q, reference=ref, label_key="label", markers=table, max_epochs=30, seed=0)
    acc = (q.obs["cell_type"].astype(str) == truth.loc[q.obs_names, "true_cell_type"]).mean()
    assert acc > 0.85, acc
    assert "X_scANVI" in q.obsm
    assert q.obs["cell_type_score"].between(0, 1).all()


def test_protein_table_resolves_aliases_and_optional_slots():
    from immunoprofiler.tl.annotation import resolve_panel_markers

    cyto = read_marker_table(ROOT / "resources" / "cyto_cell_types.tsv")
    assert set(cyto["lineage"]) <= set(LINEAGES)
    assert {"plasmablast", "neutrophil", "natural killer T cell", "regulatory T cell"} <= set(
        cyto.index
    )
    mouse = ["CD3", "CD4", "CD8", "CD19", "TCRb", "TCRyd", "NK1/1", "CD45"]
    r = resolve_panel_markers(cyto, mouse)
    assert r.loc["gamma-delta T cell", "positive"] == "CD3,TCRyd"
    assert r.loc["natural killer T cell", "positive"] == "CD3,NK1/1"
    assert r.loc["CD4 T cell", "positive"] == "CD3,CD4,TCRb"  # optional TCRb used when present
    assert "classical monocyte" not in r.index  # CD14 is required and absent
    pbmc8 = ["CD3", "CD45", "CD4", "CD20", "CD33", "CD123", "CD14", "IgM", "HLA-DR", "CD7"]
    r = resolve_panel_markers(cyto, pbmc8)
    assert r.loc["CD8 T cell", "positive"] == "CD3"  # CD8 optional: CD3+ CD4- without it
    assert "CD4" in r.loc["CD8 T cell", "negative"].split(",")
    assert r.loc["NK cell", "positive"] == "CD7"
    assert r.loc["B cell", "positive"] == "CD20,HLA-DR"
    with pytest.raises(ValueError, match="no cell type"):
        resolve_panel_markers(cyto, ["GFP"])


def _gate_table() -> pd.DataFrame:
    """Three protein types: CD4 T, CD8 T and B cells by CD3/CD4/CD8/CD19."""
    return pd.DataFrame(
        {
            "cell_type": ["CD4 T cell", "CD8 T cell", "B cell"],
            "cell_ontology_id": ["CL:0000624", "CL:0000625", "CL:0000236"],
            "lineage": ["T cell", "T cell", "B cell"],
            "positive": ["CD3,CD4", "CD3,CD8", "CD19"],
            "negative": ["CD8", "CD4", "CD3"],
        }
    ).set_index("cell_type", drop=False)


def test_gate_rule_needs_every_positive_and_no_negative():
    table = _gate_table()
    rng = np.random.default_rng(0)
    prof = {
        "cd4": [4, 4, 0, 0],
        "cd8": [4, 0, 4, 0],
        "b": [0, 0, 0, 4],
        "dp": [4, 4, 4, 0],
        "nil": [0, 0, 0, 0],
    }
    X = np.vstack([np.array(v) + rng.normal(0, 0.3, (200, 4)) for v in prof.values()])
    a = ad.AnnData(X=X, var=pd.DataFrame(index=["CD3", "CD4", "CD8", "CD19"]))
    a.obs["cl"] = np.repeat(list(prof), 200)
    annotate(a, markers=table, cluster_key="cl", rule="gate", min_expression=1.0)
    calls = a.obs.groupby("cl", observed=True)["cell_type"].agg(lambda s: s.mode()[0])
    assert calls.to_dict() == {
        "b": "B cell",
        "cd4": "CD4 T cell",
        "cd8": "CD8 T cell",
        "dp": "unknown",
        "nil": "unknown",
    }


def _mouse(symbol: str) -> str:
    """The demo's human symbols as a mouse data set would spell them."""
    from immunoprofiler.tl.annotation import MOUSE_ALIASES

    if symbol in MOUSE_ALIASES:
        return MOUSE_ALIASES[symbol][0]
    return symbol[:1] + symbol[1:].lower()


def test_mouse_symbols_are_annotated_like_human(clustered, table):
    from immunoprofiler.tl.annotation import localize_markers

    human = clustered.copy()
    annotate(human, markers=table, seed=0)
    mouse = clustered.copy()
    mouse.var_names = [_mouse(g) for g in clustered.var_names]
    assert "Cd3e" in mouse.var_names and "Lyz2" in mouse.var_names
    local = localize_markers(table, mouse.var_names, species="mouse", min_found=0.25)
    assert "Cd3e" in local.loc["CD4 T cell", "positive"]
    assert local.loc["classical monocyte", "positive"].startswith("Cd14,Lyz2")
    annotate(mouse, markers=local, seed=0)
    assert (mouse.obs["cell_type"] == human.obs["cell_type"]).all()
    with pytest.raises(ValueError, match="wrong species or gene ids"):
        # without the orthologs and with a strict threshold: too few genes are found
        localize_markers(
            table,
            pd.Index([g.lower() + "x" for g in clustered.var_names]),
            species="mouse",
            min_found=0.25,
        )


def test_gene_ids_instead_of_symbols_stop_with_the_reason(table):
    from immunoprofiler.tl.annotation import MarkerCoverageError, localize_markers

    ids = pd.Index([f"ENSG{i:011d}" for i in range(2000)])
    with pytest.raises(MarkerCoverageError) as err:
        localize_markers(table, ids, species="human", min_found=0.25)
    msg = str(err.value)
    assert msg.startswith("only 0 of the 73 marker genes (0%) are in the data")
    assert "ENSG00000000000" in msg and "rna.species (now human)" in msg
    same = localize_markers(table, pd.Index(marker_genes(table)), species="human", min_found=1)
    pd.testing.assert_frame_equal(same, table)  # human symbols: the table unchanged


def test_a_panel_reports_the_lineage_it_can_resolve():
    """Cell types a panel cannot identify fall back to the coarser label of the lineage table
    (resources/cyto_lineages.tsv) only where the panel resolves no finer type."""
    from immunoprofiler.tl.annotation import read_lineage_table, resolve_panel_markers

    cyto = read_marker_table(ROOT / "resources" / "cyto_cell_types.tsv")
    lineages = read_lineage_table(ROOT / "resources" / "cyto_lineages.tsv")
    myeloid = ["CD45", "CD14", "CD16", "CD33", "CD11c", "HLA-DR", "CD123"]
    r = resolve_panel_markers(cyto, myeloid, lineages)
    assert {"classical monocyte", "non-classical monocyte", "conventional dendritic cell"} <= set(
        r.index
    )
    assert "non-myeloid cell" in r.index and "T cell" not in r.index
    assert r.loc["non-myeloid cell", "positive"] == "CD45"
    assert set(r.loc["non-myeloid cell", "negative"].split(",")) == {"CD14", "CD33"}
    assert "myeloid cell" not in r.index  # monocytes and DCs are resolved finer
    assert "stands_for" not in r.columns
    # CD3 without CD4 / CD8 / TCRgd / CD56: "T cell"; T cells found: no "non-myeloid"
    r = resolve_panel_markers(cyto, ["CD45", "CD3", "CD14", "CD20"], lineages)
    assert "T cell" in r.index and "non-myeloid cell" not in r.index
    assert "CD4 T cell" not in r.index
    # a full lineage panel gets no fallback label at all
    pbmc8 = ["CD3", "CD45", "CD4", "CD20", "CD33", "CD123", "CD14", "IgM", "HLA-DR", "CD7"]
    assert not {"T cell", "myeloid cell", "non-myeloid cell"} & set(
        resolve_panel_markers(cyto, pbmc8, lineages).index
    )


def test_lineage_table_is_checked(tmp_path):
    from immunoprofiler.tl.annotation import read_lineage_table

    bad = tmp_path / "l.tsv"
    bad.write_text(
        "cell_type\tcell_ontology_id\tlineage\tpositive\tnegative\tstands_for\n"
        "x\tCL:1\tT cell\tCD3\t\tT-cells\n"
    )
    with pytest.raises(ValueError, match="unknown lineage"):
        read_lineage_table(bad)


def test_fitting_file_by_file_gives_the_labels_of_all_cells_at_once():
    """Cytometry annotates a cohort one file at a time (MarkerAnnotation): cluster means,
    split votes and sub-cluster means summed over the files give the same labels, scores,
    categories and group table as annotate() on every event — including a split cluster."""
    from immunoprofiler.tl.annotation import LABEL_COLUMNS, fit_marker_annotation

    table = _gate_table()
    rng = np.random.default_rng(1)
    prof = {"cd4": [4, 4, 0, 0], "cd8": [4, 0, 4, 0], "b": [0, 0, 0, 4], "nil": [0, 0, 0, 0]}
    X = np.vstack([np.array(v) + rng.normal(0, 0.3, (300, 4)) for v in prof.values()])
    truth = np.repeat(list(prof), 300)
    # metacluster "1" mixes CD4 and CD8 T cells (nodes 1 and 2); events shuffled over files
    meta = np.select([truth == "b", truth == "nil"], ["2", "3"], "1")
    node = np.select([truth == "cd4", truth == "cd8", truth == "b"], ["1", "2", "3"], "4")
    order = rng.permutation(len(X))
    X, meta, node, truth = X[order], meta[order], node[order], truth[order]
    a = ad.AnnData(X=X, var=pd.DataFrame(index=["CD3", "CD4", "CD8", "CD19"]))
    a.obs["metacluster"], a.obs["som_node"] = meta, node
    annotate(a, markers=table, cluster_key="metacluster", subcluster_key="som_node", rule="gate")
    assert (a.obs["cell_type"].astype(str)[truth == "cd8"] == "CD8 T cell").all()  # split
    files = [slice(0, 100), slice(100, 700), slice(700, 1200)]
    fit = fit_marker_annotation(
        lambda: [(X[f], meta[f], node[f]) for f in files],
        genes=a.var_names,
        markers=table,
        cluster_key="metacluster",
        rule="gate",
        split=True,
    )
    pd.testing.assert_frame_equal(fit.uns["groups"], a.uns["annotation"]["groups"])
    for f in files:
        for col, values in fit.label(X[f], meta[f], node[f]).items():
            expected = a.obs[col].iloc[f]
            if col == "cell_type_score":
                np.testing.assert_allclose(values, expected.to_numpy(), rtol=1e-6)
            else:  # the categories of the whole fit in every file
                assert list(values.categories) == list(expected.cat.categories), col
                assert (np.asarray(values) == expected.to_numpy()).all(), col
    # streamed over the files (what cyto_annotate writes): the same columns as annotate()
    cats = fit.categories()
    assert list(cats) == [*LABEL_COLUMNS, "annotation_group"]
    got = {col: np.empty(len(X), dtype=np.int64) for col in cats}
    got["cell_type_score"] = np.empty(len(X), dtype=np.float32)
    for r, columns in fit.label_stream(((X[f], meta[f], node[f]) for f in files), files):
        for col, values in columns.items():
            got[col][r] = values
    for col, values in got.items():
        if col == "cell_type_score":
            np.testing.assert_allclose(values, a.obs[col].to_numpy(), rtol=1e-6)
        else:
            assert cats[col] == list(a.obs[col].cat.categories), col
            assert (np.asarray(cats[col])[values] == a.obs[col].to_numpy()).all(), col
