"""Differential state (diffcyt-DS-limma style) on per-sample marker medians with a known truth."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from immunoprofiler.tl.differential import moderated_t
from immunoprofiler.tl.state import DS_COLUMNS, differential_state, note_barcode_spill

TYPES = ["B cell", "CD4 T", "CD8 T", "NK", "monocyte", "pDC"]
STATE = ["pS6", "pErk", "Ki-67", "CD38", "HLA-DR"]


def _cohort(effect=1.0, n_patients=4, seed=0, few=("pDC", "p1_post", 4)):
    """Paired medians (patients × pre/post): ``effect`` added to pS6 in B cells after; each
    patient its own offset; a type/sample with ``few`` cells."""
    rng = np.random.default_rng(seed)
    rows, cells = [], []
    for p in range(n_patients):
        offset = rng.normal(0, 0.5, size=(len(TYPES), len(STATE)))
        for t in ("pre", "post"):
            s = f"p{p}_{t}"
            for i, ct in enumerate(TYPES):
                n = few[2] if (ct, s) == few[:2] else 500
                cells.append({"sample_id": s, "modality": "cytof", "cell_type": ct, "n_cells": n})
                for j, mk in enumerate(STATE):
                    y = 2 + offset[i, j] + rng.normal(0, 0.1)
                    y += effect if (t == "post" and ct == "B cell" and mk == "pS6") else 0.0
                    rows.append(
                        {
                            "sample_id": s,
                            "modality": "cytof",
                            "cell_type": ct,
                            "marker": mk,
                            "marker_class": "state",
                            "median": y,
                        }
                    )
                rows.append({**rows[-1], "marker": "CD19", "marker_class": "type", "median": 3.0})
    meta = pd.DataFrame(
        {
            "sample_id": [f"p{p}_{t}" for p in range(n_patients) for t in ("pre", "post")],
            "patient": [f"p{p}" for p in range(n_patients) for _ in range(2)],
            "timepoint": ["pre", "post"] * n_patients,
        }
    ).set_index("sample_id")
    return pd.DataFrame(rows), pd.DataFrame(cells), meta


def test_the_planted_state_change_is_found_and_the_nulls_stay_quiet():
    """Ten simulated cohorts: pS6 in B cells first every time (q < 0.01, logFC ≈ 1), and
    the 29 null tests of each called at q < 0.05 in at most 2 % of cases (BH at 5 %)."""
    false_calls = 0
    for seed in range(10):
        medians, cells, meta = _cohort(seed=seed)
        res = differential_state(
            medians, cells, meta, column="timepoint", groups=["pre", "post"], paired_by="patient"
        )
        top = res.iloc[0]
        assert (top["cell_type"], top["marker"]) == ("B cell", "pS6"), seed
        assert top["q_value"] < 0.01 and top["logFC"] == pytest.approx(1.0, abs=0.2), seed
        false_calls += int((res["q_value"].iloc[1:] < 0.05).sum())
    assert false_calls <= 0.02 * 10 * (len(TYPES) * len(STATE) - 1), false_calls
    assert list(res.columns) == DS_COLUMNS
    assert len(res) == len(TYPES) * len(STATE)  # state markers only
    pdc = res[res["cell_type"] == "pDC"]
    assert (pdc["n_samples"] == 7).all()  # p1_post has 4 < 10 pDCs: left out of pDC's tests
    assert pdc["note"].str.contains("1 sample\\(s\\) with < 10 cells left out").all()
    assert (res.loc[res["cell_type"] != "pDC", "note"] == "").all()
    with_types = differential_state(
        medians,
        cells,
        meta,
        column="timepoint",
        groups=["pre", "post"],
        paired_by="patient",
        marker_classes=("state", "type"),
    )
    assert set(with_types["marker"]) == {*STATE, "CD19"}


def test_one_sample_per_group_gives_effect_sizes_without_p_values():
    medians, cells, meta = _cohort(n_patients=1, few=("", "", 0))
    res = differential_state(medians, cells, meta, column="timepoint", groups=["pre", "post"])
    top = res.set_index(["cell_type", "marker"]).loc[("B cell", "pS6")]
    assert top["logFC"] == pytest.approx(1.0, abs=0.3) and np.isnan(top["p_value"])
    assert res["p_value"].isna().all() and res["note"].str.startswith("not tested: 1 pre").all()


def test_unpaired_samples_are_dropped_with_a_note_and_covariates_recorded():
    medians, cells, meta = _cohort()
    meta.loc["p3_post", "patient"] = "p9"  # p3_pre and p3_post lose their partner
    meta["sex"] = ["f", "f", "m", "m", "f", "f", "m", "m"]
    res = differential_state(
        medians,
        cells,
        meta,
        column="timepoint",
        groups=["pre", "post"],
        paired_by="patient",
        covariates=["sex"],
    )
    assert (res["n_samples"] <= 6).all() and res["note"].str.contains("2 unpaired").all()
    assert (res["covariates"] == "sex").all() and res.iloc[0]["marker"] == "pS6"
    with pytest.raises(KeyError, match="no column 'age'"):
        differential_state(
            medians, cells, meta, column="timepoint", groups=["pre", "post"], covariates=["age"]
        )


def test_moderated_t_with_missing_values_equals_fitting_without_those_samples():
    rng = np.random.default_rng(1)
    Y = rng.normal(size=(8, 30))
    Y[:4, 0] += 2
    X = np.column_stack([np.ones(8), np.repeat([0.0, 1.0], 4)])
    Y[0, 5] = np.nan
    full = moderated_t(Y, X)
    alone = moderated_t(Y[1:, 5:6], X[1:])  # feature 5 without sample 0
    assert full.loc[5, "coef"] == pytest.approx(alone.loc[0, "coef"])
    assert full.loc[0, "p_value"] < 0.01  # the shifted feature
    assert np.isfinite(full["p_value"]).all()


def test_a_group_absent_from_a_modality_gives_effect_sizes_only_with_a_note():
    """The contrast's second group has no sample in this modality (e.g. its files all failed):
    rows are kept with one group's means, no logFC or p-value, and the note says why."""
    medians, cells, meta = _cohort()
    pre = meta.index[meta["timepoint"] == "pre"]
    res = differential_state(
        medians[medians["sample_id"].isin(pre)],
        cells,
        meta,
        column="timepoint",
        groups=["pre", "post"],
    )
    assert len(res) and res["p_value"].isna().all() and res["logFC"].isna().all()
    assert (res["n_b"] == 0).all() and res["mean_median_a"].notna().all()
    assert res["note"].str.contains("not tested: 4 pre and 0 post samples").all()


def test_a_marker_some_panels_lack_is_tested_where_measured_and_noted():
    """CD38 is in one panel group only (two views of cytof): tested there, noted on its rows;
    in a single view, samples whose panel lacks a marker are counted in the note."""
    medians, cells, meta = _cohort(few=("", "", 0))
    medians["panel_group"] = "lineage"
    cells["panel_group"] = "lineage"
    second = medians[medians["marker"] != "CD38"].assign(panel_group="myeloid")
    med2 = pd.concat([medians, second], ignore_index=True)
    cells2 = pd.concat([cells, cells.assign(panel_group="myeloid")], ignore_index=True)
    res = differential_state(
        med2, cells2, meta, column="timepoint", groups=["pre", "post"], paired_by="patient"
    )
    assert set(res["modality"]) == {"cytof:lineage", "cytof:myeloid"}
    cd38 = res[res["marker"] == "CD38"]
    assert set(cd38["modality"]) == {"cytof:lineage"} and cd38["p_value"].notna().all()
    assert cd38["note"].str.contains("not in cytof:myeloid").all()
    assert not res.loc[res["marker"] != "CD38", "note"].str.contains("not in").any()
    # one view: two samples' panel lacks pErk
    lacking = ~((medians["marker"] == "pErk") & medians["sample_id"].isin(["p0_pre", "p0_post"]))
    res = differential_state(
        medians[lacking], cells, meta, column="timepoint", groups=["pre", "post"]
    )
    perk = res[res["marker"] == "pErk"]
    assert (perk["n_samples"] == 6).all() and perk["p_value"].notna().all()
    assert perk["note"].str.contains("not measured in 2 sample").all()


def test_a_paired_design_without_any_pair_is_a_clear_error():
    medians, cells, meta = _cohort()
    meta["patient"] = [f"q{i}" for i in range(len(meta))]  # nobody has a partner
    with pytest.raises(ValueError, match="no sample of pre has a post partner by 'patient'"):
        differential_state(
            medians, cells, meta, column="timepoint", groups=["pre", "post"], paired_by="patient"
        )


def test_state_markers_a_barcode_spills_into_are_noted():
    """cyto.spillover: barcodes: a state marker's channel that a code spills into (never
    compensated) gets a note in every modality / panel group of that modality; pairs
    applied (type markers, compensated) or estimated at 0, and other modalities, do not."""
    res = pd.DataFrame(
        {
            "modality": ["cytof", "cytof:myeloid", "flow", "cytof", "cytof"],
            "marker": ["pNFkB", "pNFkB", "pNFkB", "CD4", "pS6"],
            "note": ["", "2 samples with < 10 cells", "", "", ""],
        }
    )
    pairs = pd.DataFrame(
        {
            "source": ["BC3(Nd146)Dd", "BC3(Nd146)Dd", "BC2(Pr141)Dd", "BC7(Lu175)Dd"],
            "target": ["pNFkB(Nd142)Dd", "CD4(Nd145)Dd", "pNFkB(Nd142)Dd", "pS6(Yb172)Dd"],
            "marker": ["pNFkB", "CD4", "pNFkB", "pS6"],
            "spill": [0.0068, 0.0038, 0.0, 0.0],
            "applied": [False, True, False, False],
        }
    )
    notes = note_barcode_spill(res, pairs, "cytof")["note"].tolist()
    said = "barcode BC3(Nd146)Dd spills into this channel (0.68 %, estimated; not compensated)"
    assert notes == [said, f"2 samples with < 10 cells; {said}", "", "", ""]
    assert res["note"].tolist()[0] == ""  # the input is not changed
