"""immunoprofiler.io.tenx on the real 10x fixtures in every layout, and malformed inputs."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
import scipy.sparse as sp

from immunoprofiler.io.tenx import InputFormatError, read_rna
from tests.conftest import shared

FIX = "scrna_10x_format_fixtures_scanpy"


@pytest.mark.parametrize(
    ("rel", "shape", "total"),
    [
        ("3.0.0/filtered_feature_bc_matrix.h5", (1107, 507), 41549),
        ("3.0.0/filtered_feature_bc_matrix", (1107, 507), 41549),
        ("1.2.0/filtered_gene_bc_matrices_h5.h5", (12, 343), 12),
        ("1.2.0/filtered_gene_bc_matrices", (12, 343), 12),
        ("1.2.0/filtered_gene_bc_matrices/hg19_chr21", (12, 343), 12),
        ("int-ids", (5, 6), 8),
    ],
)
def test_every_10x_layout(rel, shape, total):
    a = read_rna(shared(FIX, rel), sample_id="S1")
    assert a.shape == shape
    assert a.X is None
    counts = a.layers["counts"]
    assert sp.isspmatrix_csr(counts) or isinstance(counts, sp.csr_array | sp.csr_matrix)
    assert counts.dtype == np.float32
    assert counts.sum() == total
    assert a.obs_names.is_unique and a.var_names.is_unique
    assert all(n.startswith("S1_") for n in a.obs_names)
    assert (a.obs["sample_id"] == "S1").all()
    assert "gene_ids" in a.var


def test_h5_and_mex_agree():
    h5 = read_rna(shared(FIX, "3.0.0/filtered_feature_bc_matrix.h5"), sample_id="x")
    mex = read_rna(shared(FIX, "3.0.0/filtered_feature_bc_matrix"), sample_id="x")
    assert list(h5.var_names) == list(mex.var_names)
    assert list(h5.obs_names) == list(mex.obs_names)
    assert (h5.layers["counts"] != mex.layers["counts"]).nnz == 0
    assert h5.var["gene_ids"].iloc[0].startswith("ENSG")


def test_numeric_feature_ids_kept_as_strings():
    a = read_rna(shared(FIX, "int-ids"), sample_id="m")
    assert a.var.loc["Pwwp4b", "gene_ids"] == "574405"


def test_multi_genome_legacy_needs_genome():
    path = shared(FIX, "1.2.0/multiple_genomes.h5")
    with pytest.raises(InputFormatError, match=r"sample 'M'.*several genomes.*another_genome"):
        read_rna(path, sample_id="M")
    a = read_rna(path, sample_id="M", genome="hg19_chr21")
    assert a.shape == (12, 343)


def test_adt_goes_to_obsm_not_genes():
    a = read_rna(
        shared("scrna_10x_pbmc10k_protein_v3_subset_with_adt", "filtered_feature_bc_matrix"),
        sample_id="p",
    )
    assert a.shape == (1024, 100)
    assert a.obsm["protein"].shape == (1024, 17)
    assert len(a.uns["protein_names"]) == 17
    assert not set(a.uns["protein_names"]) & set(a.var_names)
    assert (a.var["feature_types"] == "Gene Expression").all()
    assert a.obsm["protein"].sum() > a.layers["counts"].sum()  # ADT dominates this subset


def test_kang_gene_symbols_both_columns(kang):
    a = read_rna(kang["ctrl"], sample_id="ctrl")
    assert a.shape == (1000, 9015)
    assert a.layers["counts"].sum() == 1_475_025
    assert "CD3E" in a.var_names and not a.var_names.str.startswith("MT-").any()


def test_h5ad_input_and_non_counts_rejected(tmp_path):
    import anndata as ad

    X = sp.csr_matrix(np.array([[1, 0, 2], [0, 3, 0]], dtype=np.float32))
    a = ad.AnnData(X=X)
    a.var_names = ["CD3E", "MS4A1", "CD14"]
    a.obs_names = ["AAA-1", "CCC-1"]
    a.write_h5ad(tmp_path / "ok.h5ad")
    out = read_rna(tmp_path / "ok.h5ad", sample_id="h")
    assert out.layers["counts"].sum() == 6
    a.X = X * 0.5
    a.write_h5ad(tmp_path / "lognorm.h5ad")
    with pytest.raises(InputFormatError, match="raw counts"):
        read_rna(tmp_path / "lognorm.h5ad", sample_id="h")


def test_h5ad_reads_only_the_counts_obs_var_and_protein(tmp_path):
    """An .h5ad as shared after an analysis: normalised X, counts in a layer, raw, an
    embedding. Only the counts (and obs, var, protein) are read: X is damaged here and the
    read still works; protein without names keeps its values."""
    import anndata as ad
    import h5py

    counts = sp.csr_matrix(np.array([[1, 0, 2], [0, 3, 0]], dtype=np.float32))
    a = ad.AnnData(X=counts.copy(), obs={"donor": ["d1", "d2"]})
    a.var_names = ["CD3E", "MS4A1", "CD14"]
    a.obs_names = ["AAA-1", "CCC-1"]
    a.raw = a
    a.layers["counts"] = counts
    a.X.data = np.log1p(a.X.data)
    a.obsm["X_umap"] = np.zeros((2, 2))
    a.obsm["protein"] = np.array([[5.0, 1.0], [0.0, 2.0]])
    a.write_h5ad(tmp_path / "shared.h5ad")
    with h5py.File(tmp_path / "shared.h5ad", "r+") as f:
        del f["X/data"]
    out = read_rna(tmp_path / "shared.h5ad", sample_id="h")
    assert (out.layers["counts"] != counts).nnz == 0
    assert list(out.obs["donor"]) == ["d1", "d2"] and list(out.obs["barcode"]) == ["AAA-1", "CCC-1"]
    assert list(out.var_names) == ["CD3E", "MS4A1", "CD14"]
    np.testing.assert_array_equal(out.obsm["protein"], a.obsm["protein"])
    assert out.uns["protein_names"] == [] and "X_umap" not in out.obsm


def test_h5ad_from_before_anndata_0_7(tmp_path):
    """obs and var as table datasets, X dense: read whole, as anndata reads it."""
    import h5py

    with h5py.File(tmp_path / "old.h5ad", "w") as f:
        f.create_dataset("X", data=np.array([[1, 0, 2], [0, 3, 0]], dtype=np.float32))
        f.create_dataset("obs", data=np.array([(b"AAA-1",), (b"CCC-1",)], dtype=[("index", "S5")]))
        var = np.array([(b"CD3E",), (b"MS4A1",), (b"CD14",)], dtype=[("index", "S5")])
        f.create_dataset("var", data=var)
    out = read_rna(tmp_path / "old.h5ad", sample_id="o")
    assert list(out.obs_names) == ["o_AAA-1", "o_CCC-1"]
    assert list(out.var_names) == ["CD3E", "MS4A1", "CD14"]
    assert out.layers["counts"].sum() == 6


def test_malformed_mex_names_the_problem(tmp_path):
    folder = tmp_path / "bad"
    folder.mkdir()
    with gzip.open(folder / "matrix.mtx.gz", "wt") as fh:
        fh.write("%%MatrixMarket matrix coordinate integer general\n3 2 1\n1 1 5\n")
    with gzip.open(folder / "features.tsv.gz", "wt") as fh:
        fh.write("g1\tA\tGene Expression\ng2\tB\tGene Expression\n")  # 2 features, matrix says 3
    with gzip.open(folder / "barcodes.tsv.gz", "wt") as fh:
        fh.write("b1\nb2\n")
    with pytest.raises(InputFormatError, match=r"sample 'bad1'.*3 x 2.*2 features"):
        read_rna(folder, sample_id="bad1")
    (folder / "barcodes.tsv.gz").unlink()
    with pytest.raises(InputFormatError, match="barcodes"):
        read_rna(folder, sample_id="bad1")


def test_truncated_h5_is_a_clear_error(tmp_path):
    src = shared(FIX, "3.0.0/filtered_feature_bc_matrix.h5").read_bytes()
    bad = tmp_path / "trunc.h5"
    bad.write_bytes(src[: len(src) // 3])
    with pytest.raises(InputFormatError, match="sample 'T'"):
        read_rna(bad, sample_id="T")
