"""Clustering: Leiden and UMAP land in their slots, reproducibly, and clusters follow cell types."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from immunoprofiler.tl.clustering import cluster
from immunoprofiler.tl.integration import integrate


@pytest.fixture(scope="module")
def integrated(demo_cohort):
    a = ad.read_h5ad(demo_cohort["hvg"])
    integrate(a, method="harmony", seed=0)
    return a


def test_cluster_slots_and_determinism(integrated, demo_cohort):
    a, b = integrated.copy(), integrated.copy()
    cluster(a, use_rep="X_pca_harmony", seed=0)
    cluster(b, use_rep="X_pca_harmony", seed=0)
    assert "leiden" in a.obs and a.obsm["X_umap"].shape == (a.n_obs, 2)
    assert "connectivities" in a.obsp
    assert list(a.obs["leiden"]) == list(b.obs["leiden"])
    np.testing.assert_array_equal(a.obsm["X_umap"], b.obsm["X_umap"])
    truth = demo_cohort["truth"].loc[a.obs_names, "true_cell_type"]
    assert adjusted_rand_score(truth, a.obs["leiden"]) > 0.6


def test_cluster_needs_embedding(integrated):
    with pytest.raises(KeyError, match="no 'X_scVI'"):
        cluster(integrated.copy(), use_rep="X_scVI")


def test_umap_fitted_on_a_subsample_places_the_other_cells(integrated, demo_cohort):
    a, b = integrated.copy(), integrated.copy()
    fitted = cluster(a, use_rep="X_pca_harmony", umap_cells=1000, seed=0)
    cluster(b, use_rep="X_pca_harmony", umap_cells=1000, seed=0, n_jobs=2)
    assert a.uns["umap"]["fitted_cells"] == len(fitted) == len(set(fitted)) == 1000
    assert a.uns["umap"]["placed_cells"] == a.n_obs - 1000
    assert np.isfinite(a.obsm["X_umap"]).all()
    # neither the threads nor anything else changes the clusters or the embedding
    assert list(a.obs["leiden"]) == list(b.obs["leiden"])
    np.testing.assert_array_equal(a.obsm["X_umap"], b.obsm["X_umap"])
