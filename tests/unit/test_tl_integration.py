"""Integration: batch mixing improves, scVI trains and saves, GPU requests fail loudly without one."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pytest
from sklearn.neighbors import NearestNeighbors

from immunoprofiler.accelerator import AcceleratorError, select_accelerator
from immunoprofiler.io.h5ad import layer_as_X, lazy_X
from immunoprofiler.tl.integration import integrate


def batch_mixing(adata, rep, k=15):
    """Fraction of each cell's k nearest neighbours that come from another batch."""
    idx = (
        NearestNeighbors(n_neighbors=k + 1)
        .fit(adata.obsm[rep])
        .kneighbors(adata.obsm[rep], return_distance=False)
    )
    b = adata.obs["batch"].astype(str).to_numpy()
    return float((b[idx[:, 1:]] != b[:, None]).mean())


def type_purity(adata, rep, truth, k=15):
    idx = (
        NearestNeighbors(n_neighbors=k + 1)
        .fit(adata.obsm[rep])
        .kneighbors(adata.obsm[rep], return_distance=False)
    )
    t = truth.loc[adata.obs_names, "true_cell_type"].to_numpy()
    return float((t[idx[:, 1:]] == t[:, None]).mean())


@pytest.fixture(scope="module")
def hvg(demo_cohort):
    return ad.read_h5ad(demo_cohort["hvg"])


def test_harmony_mixes_batches_and_keeps_types(hvg, demo_cohort):
    a = hvg.copy()
    key = integrate(a, method="harmony", seed=0)
    assert key == "X_pca_harmony"
    before, after = batch_mixing(a, "X_pca"), batch_mixing(a, key)
    assert before < 0.1  # the demo has a visible batch effect
    assert after > 0.3
    assert type_purity(a, key, demo_cohort["truth"]) > 0.9


def test_none_is_pca(hvg):
    a = hvg.copy()
    assert integrate(a, method="none", n_pcs=20) == "X_pca"
    assert a.obsm["X_pca"].shape == (a.n_obs, 20)


def _scvi_from_disk(path, **kwargs):
    """scVI trained from the file's counts on disk (``rna_integrate`` when they do not fit)."""
    with layer_as_X(path, "counts", obs=["batch"]) as a:
        integrate(a, method="scvi", counts_layer=None, **kwargs)
        return a.obsm["X_scVI"], a.uns["integration"]


def test_pca_of_a_lazily_read_X_is_the_pca_in_memory(hvg, demo_cohort):
    """The Harmony / PCA path reads ``X`` as a dask array (``lazy_X``): scanpy's exact
    covariance PCA, the same components as the in-memory PCA up to sign; Harmony on it
    mixes the batches as in memory."""
    a = hvg.copy()
    integrate(a, method="none", n_pcs=20, seed=0)
    with lazy_X(demo_cohort["hvg"], obs=["batch"], chunk_size=1_000) as lazy:
        assert type(lazy.X).__module__.startswith("dask")
        integrate(lazy, method="none", n_pcs=20, seed=0)
        got = lazy.obsm["X_pca"]
        assert isinstance(got, np.ndarray) and got.dtype == np.float32
        for k in range(20):
            r = np.corrcoef(got[:, k], a.obsm["X_pca"][:, k])[0, 1]
            assert abs(r) > 0.999, (k, r)
        key = integrate(lazy, method="harmony", seed=0)
        assert batch_mixing(lazy, key) > 0.3


@pytest.mark.slow
def test_scvi_trains_and_saves(hvg, tmp_path, demo_cohort):
    a = hvg.copy()
    key = integrate(
        a, method="scvi", max_epochs=50, kl_warmup_epochs=50, seed=0, model_dir=tmp_path / "model"
    )
    assert key == "X_scVI" and a.obsm[key].shape == (a.n_obs, 30)
    assert (tmp_path / "model" / "model.pt").exists()
    assert batch_mixing(a, key) > 0.3  # 0.39 / 0.40 / 0.43 for seeds 0 / 1 / 2
    assert type_purity(a, key, demo_cohort["truth"]) > 0.9


@pytest.mark.slow
def test_scvi_from_disk_integrates_and_is_reproducible(hvg, demo_cohort):
    """Trained from disk, scVI integrates as in memory (plain PCA mixes < 0.1): batch mixing
    after 50 epochs, seeds 0 / 1 / 2, 0.39 / 0.41 / 0.39 from disk against 0.39 / 0.40 / 0.43
    in memory. The runs differ (a backed minibatch is read in sorted order, which changes the
    floating-point sums); a rerun is identical."""
    a = hvg.copy()
    emb, info = _scvi_from_disk(demo_cohort["hvg"], max_epochs=50, kl_warmup_epochs=50, seed=0)
    assert info["use_rep"] == "X_scVI" and info["epochs"] == 50
    a.obsm["X_scVI"] = emb
    assert batch_mixing(a, "X_scVI") > 0.3
    assert type_purity(a, "X_scVI", demo_cohort["truth"]) > 0.9
    again, _ = _scvi_from_disk(demo_cohort["hvg"], max_epochs=5, seed=0)
    np.testing.assert_array_equal(
        again, _scvi_from_disk(demo_cohort["hvg"], max_epochs=5, seed=0)[0]
    )


@pytest.mark.slow
def test_scvi_is_reproducible_on_cpu(hvg):
    a, b = hvg.copy(), hvg.copy()
    integrate(a, method="scvi", max_epochs=5, seed=0)
    integrate(b, method="scvi", max_epochs=5, seed=0)
    np.testing.assert_array_equal(a.obsm["X_scVI"], b.obsm["X_scVI"])  # same seed, same CPU result
    assert a.uns["integration"]["epochs"] == 5  # the epochs trained are recorded


@pytest.mark.slow
def test_scvi_in_memory_models_the_counts_layer(hvg):
    """In memory scVI reads ``layers["counts"]`` (the default), not the shifted-log ``X``."""
    import warnings

    a = hvg.copy()
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        integrate(a, method="scvi", max_epochs=2, seed=0)
    assert not [w for w in seen if "count data" in str(w.message)]  # X is not counts
    assert a.obsm["X_scVI"].shape == (a.n_obs, 30) and a.uns["integration"]["epochs"] == 2
    a.layers["counts"] = a.layers["counts"] * 0.5  # no longer counts: scvi-tools says so
    with pytest.warns(UserWarning, match=r"layers\[counts\] does not contain unnormalized count"):
        integrate(a, method="scvi", max_epochs=1, seed=0)


def test_missing_batch_column(hvg):
    a = hvg.copy()
    with pytest.raises(KeyError, match="no batch column 'lane'"):
        integrate(a, method="harmony", batch_key="lane")


def test_accelerator_selection(monkeypatch):
    import torch

    assert select_accelerator(0) == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    with pytest.raises(
        AcceleratorError,
        match=r"requested gpu=1 but torch sees no CUDA device \(CUDA_VISIBLE_DEVICES=0",
    ):
        select_accelerator(1)
