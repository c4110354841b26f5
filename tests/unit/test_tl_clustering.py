"""Clustering: Leiden and UMAP land in their slots, reproducibly, and clusters follow cell types."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
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


def test_leiden_from_arrays_equals_scanpy_leiden():
    """The graph built from the CSR arrays in chunks gives scanpy's labels for the same graph
    and seed (igraph flavour): same clusters, same names, at several resolutions and seeds."""
    import scanpy as sc

    from immunoprofiler.tl.clustering import _graph, leiden

    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(0, 1, (1500, 6)), rng.normal(3, 1.5, (1500, 6))]).astype("f4")
    a = ad.AnnData(obsm={"X": X}, obs=pd.DataFrame(index=[str(i) for i in range(len(X))]))
    sc.pp.neighbors(a, use_rep="X", n_neighbors=15, random_state=0, transformer="sklearn")
    graph = a.obsp["connectivities"]
    found = []
    for resolution, seed in [(1.0, 0), (0.5, 7), (2.0, 3)]:
        ref = sc.tl.leiden(
            a,
            resolution=resolution,
            flavor="igraph",
            n_iterations=2,
            directed=False,
            random_state=seed,
            copy=True,
        ).obs["leiden"]
        ours = leiden(graph, resolution=resolution, seed=seed)
        found.append(len(ours.categories))
        np.testing.assert_array_equal(np.asarray(ours), ref.to_numpy())
        assert list(ours.categories) == list(ref.cat.categories)
    assert min(found) >= 2 and max(found) > 4  # not only trivially separated clusters
    # chunks change nothing: the same edges, weights and order as one add
    g1, g2 = _graph(graph), _graph(graph, chunk=997)
    assert g1.get_edgelist() == g2.get_edgelist() and g1.es["weight"] == g2.es["weight"]
    assert g1.ecount() == graph.nnz


@pytest.mark.slow  # compiles pynndescent's search index for scanpy's own path (~30 s)
def test_graph_without_search_index_is_scanpys_pynndescent_graph():
    """The neighbour graph built without pynndescent's query index is the graph of scanpy's
    ``transformer="pynndescent"`` (same neighbours, distances and connectivities), and no
    index or forest is kept."""
    import numba
    import scanpy as sc

    from immunoprofiler.tl.clustering import _nn_descent

    rng = np.random.default_rng(1)
    X = np.vstack([rng.normal(0, 1, (3000, 10)), rng.normal(2, 1, (3000, 10))]).astype("f4")
    obs = pd.DataFrame(index=[str(i) for i in range(len(X))])
    ours, ref = ad.AnnData(obsm={"X": X}, obs=obs), ad.AnnData(obsm={"X": X}, obs=obs)
    threads = numba.get_num_threads()  # scanpy's path leaves numba's threads as they are
    transformer = _nn_descent(15, 0, threads)
    sc.pp.neighbors(ours, use_rep="X", n_neighbors=15, transformer=transformer)
    sc.pp.neighbors(ref, use_rep="X", n_neighbors=15, transformer="pynndescent", random_state=0)
    for key in ("distances", "connectivities"):
        assert (ours.obsp[key] != ref.obsp[key]).nnz == 0
    assert not hasattr(transformer, "index_")
    assert "rp_forest" not in ours.uns["neighbors"]
    # cluster() builds that graph above exact_below cells (here forced), on its n_jobs threads
    through = ad.AnnData(obsm={"X": X}, obs=obs)
    cluster(through, use_rep="X", transformer="pynndescent", n_jobs=threads, umap_cells=500)
    assert (through.obsp["connectivities"] != ref.obsp["connectivities"]).nnz == 0
