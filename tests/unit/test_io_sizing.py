"""immunoprofiler.io.sizing: the count matrix's stored entries from headers only, in every
input layout (the real 10x fixtures and the project's writers), and the memory asked."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pytest
import scipy.sparse as sp

from immunoprofiler.io.sizing import read_memory_mb, stored_entries
from immunoprofiler.io.tenx import read_rna, write_10x_h5, write_10x_mtx
from tests.conftest import shared

FIX = "scrna_10x_format_fixtures_scanpy"


@pytest.mark.parametrize(
    ("rel", "reader"),
    [
        ("3.0.0/filtered_feature_bc_matrix.h5", "h5"),
        ("3.0.0/filtered_feature_bc_matrix", "mtx"),
        ("1.2.0/filtered_gene_bc_matrices_h5.h5", "h5"),
        ("1.2.0/filtered_gene_bc_matrices", "mtx"),  # the matrix one folder below
        ("int-ids", "mtx"),
    ],
)
def test_entries_of_real_10x_files_are_what_the_reader_reads(rel, reader):
    path = shared(FIX, rel)
    assert stored_entries(path) == (reader, read_rna(path, sample_id="S").layers["counts"].nnz)


def test_legacy_file_with_several_genomes_sized_by_its_largest():
    import h5py

    path = shared(FIX, "1.2.0/multiple_genomes.h5")
    with h5py.File(path) as f:
        sizes = [g["data"].shape[0] for g in f.values() if isinstance(g, h5py.Group)]
    assert len(sizes) > 1
    assert stored_entries(path) == ("h5", max(sizes))


@pytest.fixture(scope="module")
def sample():
    rng = np.random.default_rng(0)
    X = sp.random(300, 400, density=0.1, format="csr", random_state=rng, dtype=np.float32)
    X.data = np.ceil(X.data * 10)
    a = ad.AnnData(X=X)
    a.obs_names = [f"c{i}" for i in range(a.n_obs)]
    a.var_names = [f"g{i}" for i in range(a.n_vars)]
    a.var["gene_ids"] = [f"ENSG{i:011d}" for i in range(a.n_vars)]
    return a


def test_every_written_layout(sample, tmp_path):
    nnz = sample.X.nnz
    write_10x_h5(sample, tmp_path / "m.h5")
    write_10x_mtx(sample, tmp_path / "v3", version=3)
    write_10x_mtx(sample, tmp_path / "v2", version=2)
    assert stored_entries(tmp_path / "m.h5") == ("h5", nnz)
    assert stored_entries(tmp_path / "v3") == ("mtx", nnz)
    assert stored_entries(tmp_path / "v2") == ("mtx", nnz)
    # .h5ad: the counts layer, else X (what read_rna reads); a dense one: all its values
    ad.AnnData(X=sample.X.toarray()).write_h5ad(tmp_path / "dense.h5ad")
    assert stored_entries(tmp_path / "dense.h5ad") == ("h5ad_dense", 300 * 400)
    both = sample.copy()
    both.raw = sample
    both.layers["counts"] = sample.X.copy()
    both.X = sample.X.toarray()
    both.write_h5ad(tmp_path / "both.h5ad")
    assert stored_entries(tmp_path / "both.h5ad") == ("h5ad", nnz)
    # compressed or not, the same counts ask the same memory
    sample.write_h5ad(tmp_path / "gz.h5ad", compression="gzip")
    sample.write_h5ad(tmp_path / "plain.h5ad")
    assert read_memory_mb(tmp_path / "gz.h5ad") == read_memory_mb(tmp_path / "plain.h5ad")


def test_memory_follows_entries_and_reader(sample, tmp_path):
    big = ad.concat([sample] * 8, merge="same")
    big.obs_names_make_unique()
    write_10x_mtx(sample, tmp_path / "small", version=3)
    write_10x_mtx(big, tmp_path / "big", version=3)
    write_10x_h5(big, tmp_path / "big.h5")
    assert read_memory_mb(tmp_path / "big") > read_memory_mb(tmp_path / "small")
    # parsing text holds every entry as float64 triplets: more per entry than HDF5
    assert read_memory_mb(tmp_path / "big") > read_memory_mb(tmp_path / "big.h5")


@pytest.mark.parametrize("name", ["broken.h5", "broken.h5ad", "folder"])
def test_unreadable_headers_raise_what_the_rule_catches(tmp_path, name):
    path = tmp_path / name
    if name == "folder":
        path.mkdir()
        (path / "barcodes.tsv").write_text("AAAC-1\n")
    else:
        path.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 64)
    with pytest.raises((OSError, KeyError, ValueError)):
        stored_entries(path)
