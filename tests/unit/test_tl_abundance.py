"""Composition: counts and fractions per sample."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from immunoprofiler.tl.abundance import COLUMNS, composition


def test_composition_fractions():
    obs = pd.DataFrame(
        {
            "sample_id": ["a"] * 3 + ["b"] * 2,
            "cell_type": ["B cell", "B cell", "NK cell", "NK cell", "unknown"],
            "cell_ontology_id": [
                "CL:0000236",
                "CL:0000236",
                "CL:0000623",
                "CL:0000623",
                "CL:0000000",
            ],
            "lineage": ["B cell", "B cell", "NK cell", "NK cell", "unknown"],
        }
    )
    df = composition(obs, modality="rna")
    assert list(df.columns) == COLUMNS
    assert (df["modality"] == "rna").all()
    np.testing.assert_allclose(df.groupby("sample_id")["fraction"].sum(), 1.0)
    row = df[(df.sample_id == "a") & (df.cell_type == "B cell")].iloc[0]
    assert row.n_cells == 2 and row.fraction == pytest.approx(2 / 3)


def test_composition_needs_labels():
    with pytest.raises(KeyError, match="annotate the cells first"):
        composition(pd.DataFrame({"sample_id": ["a"]}), modality="rna")
