"""Cohort figures: what each shows (panels, points, bars, labels), from small tables."""

from __future__ import annotations

import numpy as np
import pandas as pd

from immunoprofiler.pl.profile import (
    composition_bars,
    concordance_scatter,
    da_forest,
    qc_status_bars,
)
from immunoprofiler.tl.differential import DA_COLUMNS


def test_composition_bars_one_bar_per_sample_and_modality():
    comp = pd.DataFrame(
        {
            "sample_id": ["S1", "S1", "S1", "S2"],
            "modality": ["rna", "rna", "cytof", "rna"],
            "cell_type": ["B cell", "NK cell", "B cell", "B cell"],
            "fraction": [0.4, 0.6, 1.0, 1.0],
        }
    )
    ax = composition_bars(comp).axes[0]
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels == ["S1 · cytof", "S1 · rna", "S2 · rna"]  # modality, then sample
    assert len(ax.patches) == 3 * 2  # bars × cell types


def test_qc_status_bars_colour_and_reasons():
    status = pd.DataFrame(
        {
            "sample_id": ["A", "B"],
            "modality": ["rna", "rna"],
            "fraction_retained": [0.9, 0.2],
            "passed": [True, False],
            "reasons": ["", "20% kept (< 50%)"],
        }
    )
    ax = qc_status_bars(status).axes[0]
    widths = {
        t.get_text(): p.get_width() for t, p in zip(ax.get_yticklabels(), ax.patches, strict=True)
    }
    assert widths == {"B · rna": 0.2, "A · rna": 0.9}
    colours = {
        t.get_text(): p.get_facecolor()[:3]
        for t, p in zip(ax.get_yticklabels(), ax.patches, strict=True)
    }
    assert colours["B · rna"][0] > 0.8 and colours["A · rna"][1] > 0.4  # red failed, green passed
    assert [t.get_text() for t in ax.texts] == ["20% kept (< 50%)"]


def test_concordance_scatter_panels_and_r():
    rng = np.random.default_rng(0)
    rows = []
    for pair in (("cytof", "rna"), ("flow", "rna")):
        for s in ("S1", "S2", "S3"):
            for t in ("B cell", "NK cell"):
                f = rng.uniform(0.1, 0.5)
                rows.append((s, *pair, t, f, f + rng.normal(0, 0.01)))
    cross = pd.DataFrame(
        rows,
        columns=[
            "sample_id",
            "modality_a",
            "modality_b",
            "cell_type",
            "shared_fraction_a",
            "shared_fraction_b",
        ],
    )
    fig = concordance_scatter(cross)
    assert len(fig.axes) == 2
    for ax, (a, b) in zip(fig.axes, (("cytof", "rna"), ("flow", "rna")), strict=True):
        d = cross[(cross["modality_a"] == a) & (cross["modality_b"] == b)]
        r = np.corrcoef(d["shared_fraction_a"], d["shared_fraction_b"])[0, 1]
        assert ax.get_title() == f"{a} vs {b}: r = {r:.2f}, 3 samples"
        assert sum(len(c.get_offsets()) for c in ax.collections) == 6  # samples × types
    empty = concordance_scatter(cross.iloc[:0])
    assert "no sample is profiled by two modalities" in empty.axes[0].texts[0].get_text()


def _da(q, note=""):
    n = len(q)
    d = pd.DataFrame({c: [np.nan] * n for c in DA_COLUMNS})
    d["modality"], d["level"] = "cytof", "cell_type"
    d["cell_type"] = [f"type{i}" for i in range(n)]
    d["group_a"], d["group_b"] = "NR", "R"
    d["coef"] = np.linspace(-1, 2, n)
    d["t"] = 4.0
    d["q_value"], d["p_value"] = q, q
    d["transform"], d["note"] = "log_ratio", note
    return d


def test_da_forest_marks_significant_types_and_shows_notes():
    ax = da_forest(_da([0.5, 0.2, 0.01])).axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == ["type0  (q=0.5)", "type1  (q=0.2)", "type2  (q=0.01)"]  # sorted by effect
    colours = ax.collections[-1].get_facecolors()
    assert colours[2][0] > 0.8 and colours[0][0] < 0.5  # q < 0.05 in red
    assert ax.get_title() == "cytof: R vs NR" and "log2 fold change" in ax.get_xlabel()
    untested = _da([np.nan, np.nan], note="fewer than two samples per group")
    ax = da_forest(untested).axes[0]
    assert "fewer than two samples per group" in ax.texts[0].get_text()
