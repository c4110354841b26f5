from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from immunoprofiler.tl.abundance import COLUMNS
from immunoprofiler.tl.cohort import CROSS_COLUMNS, cross_modality, wide_composition


def _comp():
    rows = []
    fr = {
        ("S1", "rna"): {"CD4 T cell": 50, "B cell": 30, "platelet": 20},
        ("S1", "cytof"): {"CD4 T cell": 60, "B cell": 40, "unknown": 10},
        ("S2", "rna"): {"CD4 T cell": 20, "B cell": 80},
        ("S2", "cytof"): {"CD4 T cell": 25, "B cell": 75},
        ("S3", "cytof"): {"CD4 T cell": 10, "B cell": 90},
    }
    lineage = {
        "CD4 T cell": "T cell",
        "B cell": "B cell",
        "platelet": "platelet",
        "unknown": "unknown",
    }
    for (s, m), counts in fr.items():
        total = sum(counts.values())
        for t, n in counts.items():
            rows.append((s, m, "", t, "", lineage[t], n, n / total))
    return pd.DataFrame(
        rows,
        columns=COLUMNS,
    )


SHEET = pd.DataFrame(
    {
        "sample_id": ["S1", "S2", "S1", "S2", "S3"],
        "modality": ["rna", "rna", "cytof", "cytof", "cytof"],
        "path": ["a", "b", "c", "d", "e"],
        "batch": ["b1", "b2", "b1", "b2", "b2"],
        "response": ["R", "NR", "R", "NR", "R"],
    }
)


def test_wide_composition_rows_sum_to_one_and_carry_metadata():
    w = wide_composition(_comp(), SHEET)
    assert len(w) == 5 and "path" not in w and {"batch", "response", "n_cells"} <= set(w.columns)
    types = ["B cell", "CD4 T cell", "platelet", "unknown"]
    np.testing.assert_allclose(w[types].sum(axis=1), 1.0)
    s1 = w[(w["sample_id"] == "S1") & (w["modality"] == "rna")].iloc[0]
    assert s1["platelet"] == pytest.approx(0.2) and s1["unknown"] == 0 and s1["n_cells"] == 100
    lin = wide_composition(_comp(), SHEET, level="lineage")
    assert {"T cell", "B cell"} <= set(lin.columns)
    with pytest.raises(ValueError, match="level"):
        wide_composition(_comp(), SHEET, level="cluster")


def test_cross_modality_lines_up_the_same_sample():
    cm = cross_modality(_comp())
    assert list(cm.columns) == CROSS_COLUMNS
    # S3 is only in cytof; platelet (RNA only) and unknown are not shared
    assert set(cm["sample_id"]) == {"S1", "S2"}
    assert set(cm["cell_type"]) == {"B cell", "CD4 T cell"}
    s1 = cm[cm["sample_id"] == "S1"].set_index("cell_type")
    assert s1.loc["CD4 T cell", "fraction_a"] == pytest.approx(60 / 110)  # cytof (sorted first)
    assert s1.loc["CD4 T cell", "fraction_b"] == pytest.approx(0.5)  # rna
    # renormalised over the shared types: rna 50/80, cytof 60/100
    assert s1.loc["CD4 T cell", "shared_fraction_b"] == pytest.approx(50 / 80)
    assert s1.loc["CD4 T cell", "shared_fraction_a"] == pytest.approx(0.6)
    assert s1["mean_abs_diff"].iloc[0] == pytest.approx(abs(0.6 - 50 / 80))
    np.testing.assert_allclose(cm.groupby("sample_id")["shared_fraction_a"].sum(), 1.0)
    assert cm["pearson_r"].isna().all()  # two shared types: no correlation is defined


def test_cross_modality_pearson_with_three_types():
    comp = _comp()
    extra = comp[comp["cell_type"] == "B cell"].assign(cell_type="NK cell", n_cells=5)
    comp = pd.concat([comp, extra], ignore_index=True)
    cm = cross_modality(comp)
    assert cm["n_shared_types"].eq(3).all()
    r = cm.groupby("sample_id")["pearson_r"].first()
    assert r.between(-1, 1).all() and r["S2"] > 0.9


def test_cross_modality_matches_by_patient_and_timepoint_when_ids_differ():
    comp = _comp()
    comp.loc[comp["modality"] == "cytof", "sample_id"] = comp["sample_id"] + "_cy"
    sheet = pd.DataFrame(
        {
            "sample_id": ["S1", "S2", "S1_cy", "S2_cy", "S3_cy"],
            "modality": ["rna", "rna", "cytof", "cytof", "cytof"],
            "patient": ["p1", "p2", "p1", "p2", "p2"],
            "timepoint": ["pre", "pre", "pre", "pre", "post"],
        }
    )
    assert cross_modality(comp).empty  # no shared sample id
    cm = cross_modality(comp, sheet)
    assert set(cm["sample_id"]) == {"p1|pre", "p2|pre"}
    s1 = cm[cm["sample_id"] == "p1|pre"].set_index("cell_type")
    assert set(s1["sample_id_a"]) == {"S1_cy"} and set(s1["sample_id_b"]) == {"S1"}
    assert s1.loc["CD4 T cell", "fraction_a"] == pytest.approx(60 / 110)
    # two CyTOF samples of one patient and time point would be ambiguous: no match
    sheet.loc[4, "timepoint"] = "pre"
    assert set(cross_modality(comp, sheet)["sample_id"]) == {"p1|pre"}


def test_a_sample_measured_with_two_panels_is_compared_panel_to_panel():
    """One patient sample stained with a lineage and a myeloid panel: two cytometry samples
    in two panel groups, matched by patient and time point; each panel is one side of the
    comparisons (never pooled), and within=True gives the cross-panel concordance on the
    lineages both panels resolve."""
    from immunoprofiler.tl.abundance import views
    from immunoprofiler.tl.differential import differential_abundance_table

    lineage = {"CD4 T cell": "T cell", "B cell": "B cell", "classical monocyte": "monocyte"}
    lineage |= {"non-myeloid cell": "non-myeloid cell", "cDC": "dendritic cell"}
    fr = {
        ("S1", "rna", ""): {"CD4 T cell": 50, "B cell": 20, "classical monocyte": 30},
        ("S1_lin", "cytof", "lineage"): {"CD4 T cell": 55, "B cell": 15, "classical monocyte": 30},
        ("S1_mye", "cytof", "myeloid"): {
            "non-myeloid cell": 68,
            "classical monocyte": 28,
            "cDC": 4,
        },
    }
    rows = [
        (s, m, g, t, "", lineage[t], n, n / sum(c.values()))
        for (s, m, g), c in fr.items()
        for t, n in c.items()
    ]
    comp = pd.DataFrame(rows, columns=COLUMNS)
    assert list(views(comp).unique()) == ["rna", "cytof:lineage", "cytof:myeloid"]
    sheet = pd.DataFrame(
        {
            "sample_id": ["S1", "S1_lin", "S1_mye"],
            "modality": ["rna", "cytof", "cytof"],
            "patient": ["p1"] * 3,
            "timepoint": ["pre"] * 3,
        }
    )
    across = cross_modality(comp, sheet, within=False)
    assert set(zip(across["modality_a"], across["modality_b"], strict=True)) == {
        ("cytof:lineage", "rna"),
        ("cytof:myeloid", "rna"),
    }
    panels = cross_modality(comp, sheet, level="lineage", within=True)
    assert set(panels["modality_a"]) == {"cytof:lineage"} and set(panels["modality_b"]) == {
        "cytof:myeloid"
    }
    assert list(panels["cell_type"]) == ["monocyte"]  # the only lineage both resolve
    assert panels["fraction_a"].iloc[0] == pytest.approx(0.30)
    assert panels["fraction_b"].iloc[0] == pytest.approx(0.28)
    # differential abundance is per panel group too
    sheet["condition"] = ["a"] * 3
    da = differential_abundance_table(comp, sheet, column="condition", groups=["a", "b"])
    assert set(da["modality"]) <= {"rna", "cytof:lineage", "cytof:myeloid"}
