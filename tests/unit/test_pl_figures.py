"""RNA figures: the QC panels draw the thresholds used; the dot plot has the types and genes."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd

from immunoprofiler.pl.figures import marker_dotplot, qc_figure


def test_qc_figure_panels_thresholds_and_removed_cells():
    rng = np.random.default_rng(0)
    n = 200
    cells = pd.DataFrame(
        {
            "total_counts": rng.integers(500, 5000, n),
            "n_genes_by_counts": rng.integers(200, 2000, n),
            "pct_counts_mt": rng.uniform(0, 30, n),
            "kept": np.arange(n) >= 20,
        }
    )
    row = {
        "min_total_counts": 600.0,
        "max_total_counts": 4800.0,
        "min_n_genes": 250.0,
        "max_n_genes": 1900.0,
        "max_pct_mt": 20.0,
        "n_cells_before": n,
        "n_cells_after": 180,
        "n_qc_outliers": 15,
        "n_doublets": 5,
    }
    fig = qc_figure(cells, row, title="S1")
    scatter, counts, genes, mito = fig.axes[:4]
    assert len(scatter.collections[1].get_offsets()) == 20  # removed cells circled
    lines = {
        ax: sorted(line.get_xdata()[0] for line in ax.get_lines()) for ax in (counts, genes, mito)
    }
    assert lines[counts] == [600.0, 4800.0] and lines[genes] == [250.0, 1900.0]
    assert lines[mito] == [20.0]  # only an upper bound on mitochondrial reads
    assert fig._suptitle.get_text() == "S1: 200 barcodes → 180 cells (15 outliers, 5 doublets)"


def test_marker_dotplot_types_and_genes():
    rng = np.random.default_rng(0)
    X = rng.poisson(1, (60, 4)).astype(np.float32)
    obs = pd.DataFrame({"cell_type": np.repeat(["B cell", "NK cell", "other"], 20)})
    a = ad.AnnData(X=X, obs=obs, var=pd.DataFrame(index=["MS4A1", "CD79A", "NKG7", "GNLY"]))
    markers = {
        "B cell": ["MS4A1", "CD79A", "ABSENT"],
        "NK cell": ["NKG7", "GNLY"],
        "pDC": ["LILRA4"],
    }
    fig = marker_dotplot(a, markers=markers)
    main = next(ax for ax in fig.axes if ax.get_yticklabels())  # the dot grid
    assert [t.get_text() for t in main.get_xticklabels()] == ["MS4A1", "CD79A", "NKG7", "GNLY"]
    rows = {t.get_text() for t in main.get_yticklabels()}
    assert rows == {"B cell", "NK cell", "other"}  # pDC has no gene in the data: left out
