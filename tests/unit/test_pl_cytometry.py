"""Cytometry figures: the metacluster heatmap shows each metacluster's label and size and the
scaled medians; the composition bars stack to each sample's fractions."""

from __future__ import annotations

import numpy as np
import pandas as pd

from immunoprofiler.pl.cytometry import abundance_bars, metacluster_heatmap


def test_metacluster_heatmap_rows_columns_and_values():
    rng = np.random.default_rng(0)
    meta = np.repeat(["1", "2", "10"], [60, 30, 10])
    types = np.repeat(["B cell", "NK cell", "unknown"], [60, 30, 10])
    X = rng.normal(size=(100, 3)) + np.where(meta[:, None] == "1", [3, 0, 0], 0)
    obs = pd.DataFrame({"metacluster": meta, "cell_type": types})
    fig = metacluster_heatmap(X, obs, ["CD19", "CD56", "CD3"])
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["CD19", "CD56", "CD3"]
    rows = [t.get_text() for t in ax.get_yticklabels()]
    assert rows == ["1: B cell (n=60)", "2: NK cell (n=30)", "10: unknown (n=10)"]  # numeric order
    img = ax.get_images()[0].get_array()
    assert img.shape == (3, 3)
    assert img.min() >= 0 and img.max() <= 1  # scaled per marker
    assert img[0, 0] == 1.0  # metacluster 1 has the highest CD19 median
    # drawn from a subsample: medians of the rows given, labels and sizes of all events
    counts = pd.Series(
        [600, 5, 300, 100],
        index=pd.MultiIndex.from_tuples(
            [("1", "B cell"), ("1", "NK cell"), ("2", "NK cell"), ("10", "unknown")]
        ),
    )
    fig = metacluster_heatmap(X[::2], obs.iloc[::2], ["CD19", "CD56", "CD3"], counts=counts)
    rows = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert rows == ["1: B cell (n=605)", "2: NK cell (n=300)", "10: unknown (n=100)"]


def test_abundance_bars_stack_fractions_per_sample():
    comp = pd.DataFrame(
        {
            "sample_id": ["S1", "S1", "S2", "S2", "S2"],
            "cell_type": ["B cell", "NK cell", "B cell", "NK cell", "unknown"],
            "fraction": [0.25, 0.75, 0.5, 0.3, 0.2],
        }
    )
    fig = abundance_bars(comp, ylabel="fraction of cells")
    ax = fig.axes[0]
    assert ax.get_ylabel() == "fraction of cells"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["B cell", "NK cell", "unknown"]
    bars = ax.patches
    assert len(bars) == 2 * 3  # samples × cell types (absent ones drawn with height 0)
    tops = {}
    for b in bars:
        x = round(b.get_x() + b.get_width() / 2)
        tops[x] = max(tops.get(x, 0), b.get_y() + b.get_height())
    np.testing.assert_allclose(sorted(tops.values()), [1.0, 1.0])  # every bar stacks to 1
    heights = [b.get_height() for b in bars[:2]]  # the first cell type in both samples
    np.testing.assert_allclose(heights, [0.25, 0.5])
