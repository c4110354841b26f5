"""Integration: batch mixing improves, scVI trains and saves, GPU requests fail loudly without one."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pytest
from sklearn.neighbors import NearestNeighbors

from immunoprofiler.accelerator import AcceleratorError, select_accelerator
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


@pytest.mark.slow
def test_scvi_trains_and_saves(hvg, tmp_path, demo_cohort):
    a = hvg.copy()
    key = integrate(
        a, method="scvi", max_epochs=100, kl_warmup_epochs=100, seed=0, model_dir=tmp_path / "model"
    )
    assert key == "X_scVI" and a.obsm[key].shape == (a.n_obs, 30)
    assert (tmp_path / "model" / "model.pt").exists()
    assert batch_mixing(a, key) > 0.25
    assert type_purity(a, key, demo_cohort["truth"]) > 0.9


@pytest.mark.slow
def test_scvi_is_reproducible_on_cpu(hvg):
    a, b = hvg.copy(), hvg.copy()
    integrate(a, method="scvi", max_epochs=5, seed=0)
    integrate(b, method="scvi", max_epochs=5, seed=0)
    np.testing.assert_array_equal(a.obsm["X_scVI"], b.obsm["X_scVI"])  # same seed, same CPU result
    assert a.uns["integration"]["epochs"] == 5  # the epochs trained are recorded


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
