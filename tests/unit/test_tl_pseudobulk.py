from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from immunoprofiler.tl.pseudobulk import pseudobulk


def test_sums_counts_per_cell_type():
    rng = np.random.default_rng(0)
    X = sp.csr_matrix(rng.poisson(1.0, size=(50, 7)).astype(np.float32))
    labels = pd.DataFrame(
        {
            "cell_type": rng.choice(["B cell", "NK cell", "CD4 T cell"], 50),
            "lineage": "x",
        },
        index=[f"c{i}" for i in range(50)],
    )
    labels.loc["c3", "cell_type"] = None  # unlabelled cell: left out
    var = pd.DataFrame(index=[f"G{i}" for i in range(7)])
    pb = pseudobulk(X, labels, var, sample_id="S1")
    assert list(pb.obs["cell_type"]) == ["B cell", "CD4 T cell", "NK cell"]
    assert pb.X.dtype == np.int64 and list(pb.var_names) == list(var.index)
    dense = X.toarray()
    for i, t in enumerate(pb.obs["cell_type"]):
        cells = (labels["cell_type"] == t).to_numpy()
        np.testing.assert_array_equal(pb.X[i].toarray().ravel(), dense[cells].sum(axis=0))
        assert pb.obs["n_cells"].iloc[i] == cells.sum()
    assert pb.obs["n_cells"].sum() == 49
    assert pb.obs["total_counts"].sum() == dense.sum() - dense[3].sum()
    assert (pb.obs["sample_id"] == "S1").all() and pb.obs_names[0] == "S1|B cell"
    with pytest.raises(ValueError, match="labels"):
        pseudobulk(X[:10], labels, var, sample_id="S1")
