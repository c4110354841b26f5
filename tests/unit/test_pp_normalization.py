"""Normalisation known values; batch-aware HVGs equal scanpy's; streamed cohort files."""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scanpy as sc
import scipy.sparse as sp

from immunoprofiler import provenance
from immunoprofiler.io.tenx import read_rna
from immunoprofiler.pp.normalization import combine_hvg, common_genes, hvg_stats, normalize


def test_shifted_log_known_values():
    a = ad.AnnData(
        X=None, obs=pd.DataFrame(index=["c1", "c2", "c3"]), var=pd.DataFrame(index=["g1", "g2"])
    )
    a.layers["counts"] = sp.csr_matrix(np.array([[1, 3], [0, 0], [10, 0]], dtype=np.float32))
    normalize(a, target_sum=100)
    X = a.X.toarray()
    np.testing.assert_allclose(X[0], np.log1p([25, 75]), rtol=1e-6)
    np.testing.assert_allclose(X[1], [0, 0])  # an all-zero cell stays zero
    np.testing.assert_allclose(X[2], [np.log1p(100), 0], rtol=1e-6)
    assert a.X.dtype == np.float32
    assert a.layers["counts"][0, 1] == 3  # counts untouched


def _row_blocks(matrix, size):
    """A batch given as blocks of ``size`` rows (what the pipeline reads from its files)."""
    return lambda: (matrix[a : a + size] for a in range(0, matrix.shape[0], size))


def test_batch_hvg_matches_scanpy(kang):
    parts = []
    for name in ("ctrl", "stim"):
        a = read_rna(kang[name], sample_id=name)
        a.obs["batch"] = name
        parts.append(a)
    both = ad.concat(parts)
    both.X = both.layers["counts"]
    ref = sc.pp.highly_variable_genes(
        both, flavor="seurat_v3", n_top_genes=1000, batch_key="batch", inplace=False
    )
    # each batch read in blocks of 997 cells: two passes, never the batch's whole matrix
    stats = {
        p.obs["batch"].iloc[0]: hvg_stats(
            _row_blocks(p.layers["counts"], 997), n_genes=p.n_vars
        ).set_axis(p.var_names)
        for p in parts
    }
    ours = combine_hvg(stats, n_top_genes=1000)
    assert ours["highly_variable"].sum() == 1000
    assert set(ours.index[ours["highly_variable"]]) == set(ref.index[ref["highly_variable"]])
    np.testing.assert_allclose(ours["variances_norm"], ref["variances_norm"], rtol=1e-5)
    np.testing.assert_allclose(ours["means"], ref["means"], rtol=1e-5)
    np.testing.assert_allclose(ours["variances"], ref["variances"], rtol=1e-4)


def test_hvg_stats_do_not_depend_on_the_blocks_and_equal_scanpy_per_batch():
    rng = np.random.default_rng(0)
    lam = rng.gamma(0.3, 2.0, 300)  # 300 genes, a few highly expressed
    counts = sp.csr_matrix(rng.poisson(lam * rng.gamma(2, 0.5, (2500, 1))).astype(np.float32))
    counts[:40, :5] = 500  # outliers: the clipping at mean + σ√n matters
    whole = hvg_stats(counts)
    ref = sc.pp.highly_variable_genes(
        ad.AnnData(counts), flavor="seurat_v3", n_top_genes=50, inplace=False
    )
    np.testing.assert_allclose(whole["variances_norm"], ref["variances_norm"], rtol=1e-6)
    np.testing.assert_allclose(whole["means"], ref["means"], rtol=1e-6)
    assert (whole["n_cells"] == 2500).all()
    for size in (1, 333, 2500):
        blocked = hvg_stats(_row_blocks(counts, size), n_genes=300)
        np.testing.assert_allclose(blocked.to_numpy(), whole.to_numpy(), rtol=1e-9)
    dense = hvg_stats(_row_blocks(counts.toarray(), 400), n_genes=300)
    np.testing.assert_allclose(dense.to_numpy(), whole.to_numpy(), rtol=1e-9)


def test_hvg_stats_refuses_a_batch_it_cannot_describe():
    import pytest

    with pytest.raises(ValueError, match="n_genes"):
        hvg_stats(lambda: [sp.csr_matrix((3, 4))])
    with pytest.raises(ValueError, match="at least 2 cells"):
        hvg_stats(sp.csr_matrix(np.ones((1, 4))))


def test_rna_normalize_cohort_files(demo_cohort):
    cohort = ad.read_h5ad(demo_cohort["cohort"])
    hvg = ad.read_h5ad(demo_cohort["hvg"])
    assert cohort.var["highly_variable"].sum() == hvg.n_vars
    assert list(hvg.obs_names) == list(cohort.obs_names)
    assert cohort.obs_names.is_unique
    assert set(cohort.obs["batch"]) == {"run1", "run2"}
    # X is the shifted log of the counts layer
    c = cohort.layers["counts"][:5].toarray()
    expected = np.log1p(c / c.sum(1, keepdims=True) * 1e4)
    np.testing.assert_allclose(cohort.X[:5].toarray(), expected, rtol=1e-5, atol=1e-6)
    assert cohort.X.dtype == np.float32
    assert "rna_normalize" in cohort.uns["provenance"]
    # per-sample entries: one table in the full file, which the HVG file names
    samples = provenance.from_table(cohort.uns[provenance.SAMPLES])
    assert any(k.startswith("rna_qc:") for k in samples)
    assert hvg.uns[provenance.SAMPLES_IN] == Path(demo_cohort["cohort"]).name
    assert provenance.read(demo_cohort["hvg"]) == provenance.read(demo_cohort["cohort"])
    # one demo sample has antibody capture: the others' antibodies are missing (NaN), not 0
    stained = np.isfinite(cohort.obsm["protein"]).all(axis=1)
    with_adt = {s for s, m in cohort.uns["protein_panel"]["missing"].items() if len(m) == 0}
    assert len(with_adt) == 1
    np.testing.assert_array_equal(stained, cohort.obs["sample_id"].isin(with_adt).to_numpy())
    assert np.isnan(cohort.obsm["protein"][~stained]).all()


def test_common_genes_keeps_shared_in_first_order_and_fails_without_any():
    a, b = pd.Index(["g1", "g2", "g3"]), pd.Index(["g3", "g1", "g9"])
    assert list(common_genes({"a": a, "b": b})) == ["g1", "g3"]
    assert common_genes({"a": a, "a2": a}).equals(a)
    import pytest

    with pytest.raises(ValueError, match="share no genes"):
        common_genes({"a": a, "c": pd.Index(["x"])})


def test_protein_panel_union_and_intersection():
    from immunoprofiler.pp.normalization import align_proteins, protein_panel

    names = {"A": ["CD3", "CD4", "CD8"], "B": ["CD4", "CD3", "CD19"], "C": []}
    assert protein_panel(names, mode="union") == ["CD3", "CD4", "CD8", "CD19"]
    assert protein_panel({k: v for k, v in names.items() if v}, mode="intersection") == [
        "CD3",
        "CD4",
    ]
    assert protein_panel(names, mode="intersection") == []  # C has no antibody capture
    X = np.array([[1, 2, 3], [4, 5, 6]], dtype=np.float32)
    out = align_proteins(X, ["CD4", "CD3", "CD19"], ["CD3", "CD4", "CD8", "CD19"], n_obs=2)
    np.testing.assert_array_equal(out, [[2, 1, np.nan, 3], [5, 4, np.nan, 6]])
    assert np.isnan(align_proteins(None, [], ["CD3"], n_obs=3)).all()  # not stained: missing


def test_cite_seq_samples_with_different_antibody_panels(tmp_path):
    """Two samples of the real pbmc10k CITE-seq data, one stained with 5 fewer antibodies:
    normalisation keeps every antibody (NaN where not stained) or only the shared ones."""
    from immunoprofiler import pipeline
    from immunoprofiler.io.tenx import write_10x_mtx
    from tests.conftest import shared, step_params

    full = sc.read_10x_mtx(
        shared("scrna_10x_pbmc10k_protein_v3_subset_with_adt", "filtered_feature_bc_matrix"),
        gex_only=False,
    )
    adt = np.flatnonzero(full.var["feature_types"] == "Antibody Capture")
    dropped = full.var_names[adt[:5]]
    a = full[:500]
    b = full[500:, ~full.var_names.isin(dropped)]
    files = []
    for name, part, batch in (("A", a, "b1"), ("B", b, "b2")):
        write_10x_mtx(part, tmp_path / name)
        out = tmp_path / f"{name}.h5ad"
        pipeline.rna_ingest(
            tmp_path / name,
            out,
            sample_id=name,
            metadata={"sample_id": name, "batch": batch},
            params=step_params("rna_ingest"),
        )
        files.append(out)
    assert len(ad.read_h5ad(files[0]).uns["protein_names"]) == len(adt)
    assert len(ad.read_h5ad(files[1]).uns["protein_names"]) == len(adt) - 5

    for mode, n in (("union", len(adt)), ("intersection", len(adt) - 5)):
        out, hvg = tmp_path / f"{mode}.h5ad", tmp_path / f"{mode}_hvg.h5ad"
        pipeline.rna_normalize(
            files, out, out_hvg=hvg, params=step_params("rna_normalize", proteins=mode)
        )
        c = ad.read_h5ad(out)
        names = list(c.uns["protein_names"])
        assert len(names) == n and c.obsm["protein"].shape == (c.n_obs, n)
        assert c.uns["protein_panel"]["mode"] == mode
        in_b = c.obs["sample_id"].to_numpy() == "B"
        P = c.obsm["protein"]
        missing = [names.index(d) for d in dropped if d in names]
        assert np.isnan(P[np.ix_(in_b, missing)]).all()  # not stained: missing, not zero
        assert not np.isnan(P[~in_b]).any() and not np.isnan(np.delete(P[in_b], missing, 1)).any()
        assert sorted(c.uns["protein_panel"]["missing"]["B"]) == (
            sorted(dropped) if mode == "union" else []
        )
        # the counts of an antibody both samples have are the sample's own
        k = names.index(next(x for x in names if x not in dropped))
        np.testing.assert_array_equal(P[~in_b, k], a[:, names[k]].X.toarray().ravel())
        assert "protein" not in ad.read_h5ad(hvg).obsm  # the integration input: genes only


def test_rna_normalize_holds_a_block_not_a_sample(demo_cohort, tmp_path, monkeypatch):
    """The HVG statistics and the written files are computed one block of cells at a time
    (dask arrays read lazily, written by anndata): blocks of 100 cells peak lower than
    blocks of whole samples by more than a sample's counts, and write the same files."""
    import tracemalloc

    from immunoprofiler import pipeline
    from immunoprofiler.io.h5ad import matrix_nbytes
    from immunoprofiler.pipeline import rna
    from tests.conftest import step_params

    files = sorted(demo_cohort["work"].glob("*.qc.h5ad"))
    sample = max(matrix_nbytes(f, "counts") for f in files)

    def peak(block: int) -> tuple[int, ad.AnnData]:
        monkeypatch.setattr(rna, "BLOCK", block)
        out = tmp_path / f"{block}.h5ad"
        tracemalloc.start()
        try:
            pipeline.rna_normalize(
                files,
                out,
                out_hvg=tmp_path / f"{block}_hvg.h5ad",
                params=step_params("rna_normalize"),
            )
            return tracemalloc.get_traced_memory()[1], ad.read_h5ad(out)
        finally:
            tracemalloc.stop()

    small, by_block = peak(100)  # first: any first-call caching counts against it
    whole, by_sample = peak(10**9)
    assert small + sample < whole, (small, sample, whole)
    assert (by_block.X != by_sample.X).nnz == 0
    assert (by_block.layers["counts"] != by_sample.layers["counts"]).nnz == 0
