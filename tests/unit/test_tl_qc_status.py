from __future__ import annotations

import pandas as pd

from immunoprofiler.tl.qc_status import STATUS_COLUMNS, qc_status

RNA_QC = pd.DataFrame(
    {
        "sample_id": ["A", "B", "C"],
        "n_cells_before": [2000, 2000, 300],
        "n_cells_after": [1800, 700, 250],
    }
)
CYTO_QC = pd.DataFrame(
    {
        "sample_id": ["A", "A", "A", "B", "B"],
        "modality": ["cytof"] * 5,
        "gate": ["all events", "live", "retained", "all events", "retained"],
        "events": [10000, 9000, 9000, 5000, 800],
        "fraction": [1, 0.9, 0.9, 1, 0.16],
    }
)
COMP = pd.DataFrame(
    {
        "sample_id": ["A", "A", "B", "B", "C", "A"],
        "modality": ["rna", "rna", "rna", "rna", "rna", "cytof"],
        "cell_type": ["B cell", "unknown", "B cell", "unknown", "B cell", "unknown"],
        "fraction": [0.9, 0.1, 0.5, 0.5, 1.0, 0.02],
    }
)


def test_pass_and_every_reason_for_a_failure():
    st = qc_status(rna_qc=RNA_QC, cyto_qc=CYTO_QC, composition=COMP).set_index(
        ["modality", "sample_id"]
    )
    assert list(st.reset_index()[STATUS_COLUMNS].columns) == STATUS_COLUMNS
    assert st.loc[("rna", "A"), "passed"] and st.loc[("rna", "A"), "reasons"] == ""
    b = st.loc[("rna", "B")]
    assert not b["passed"]
    assert "35% of cells kept by QC (< 50%)" in b["reasons"]
    assert "50% of cells not annotated (> 30%)" in b["reasons"]
    c = st.loc[("rna", "C")]
    assert not c["passed"] and c["reasons"] == "250 cells after QC (< 500)"
    assert st.loc[("cytof", "A"), "passed"] and st.loc[("cytof", "A"), "n_retained"] == 9000
    cb = st.loc[("cytof", "B")]
    assert not cb["passed"] and "800 events after QC (< 1000)" in cb["reasons"]
    assert "16% of events kept" in cb["reasons"]


def test_thresholds_and_single_modality():
    st = qc_status(
        rna_qc=RNA_QC,
        cyto_qc=None,
        composition=COMP,
        min_cells=100,
        min_fraction_retained=0.3,
        max_fraction_unknown=0.6,
    )
    assert st["passed"].all() and set(st["modality"]) == {"rna"}


def test_excluded_samples_are_listed_with_their_cause():
    failed_rna = pd.DataFrame(
        [
            {
                "sample_id": "X",
                "modality": "rna",
                "step": "rna_ingest",
                "file": "x.h5",
                "reason": "cannot be read",
                "status": "failed",
            }
        ]
    )
    rna = pd.concat([RNA_QC, failed_rna], ignore_index=True)
    st = qc_status(rna_qc=rna, cyto_qc=CYTO_QC, composition=COMP).set_index(
        ["modality", "sample_id"]
    )
    x = st.loc[("rna", "X")]
    assert bool(x["excluded"]) and not bool(x["passed"])
    assert x["reasons"] == "excluded: cannot be read (rna_ingest, x.h5)"
    assert not st.drop(index=("rna", "X"))["excluded"].any()
