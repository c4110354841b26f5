"""Normalisation known values; batch-aware HVGs equal scanpy's; streamed cohort files."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import scanpy as sc
import scipy.sparse as sp

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
    stats = {
        p.obs["batch"].iloc[0]: hvg_stats(p.layers["counts"], n_top_genes=1000).set_axis(
            p.var_names
        )
        for p in parts
    }
    ours = combine_hvg(stats, n_top_genes=1000)
    assert ours["highly_variable"].sum() == 1000
    assert set(ours.index[ours["highly_variable"]]) == set(ref.index[ref["highly_variable"]])
    np.testing.assert_allclose(ours["variances_norm"], ref["variances_norm"], rtol=1e-5)
    np.testing.assert_allclose(ours["means"], ref["means"], rtol=1e-5)
    np.testing.assert_allclose(ours["variances"], ref["variances"], rtol=1e-4)


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
    assert any(k.startswith("rna_qc:") for k in cohort.uns["provenance"])
    assert "protein" not in cohort.obsm  # only one demo sample has ADT: not carried half-filled


def test_common_genes_keeps_shared_in_first_order_and_fails_without_any():
    a, b = pd.Index(["g1", "g2", "g3"]), pd.Index(["g3", "g1", "g9"])
    assert list(common_genes({"a": a, "b": b})) == ["g1", "g3"]
    assert common_genes({"a": a, "a2": a}).equals(a)
    import pytest

    with pytest.raises(ValueError, match="share no genes"):
        common_genes({"a": a, "c": pd.Index(["x"])})
