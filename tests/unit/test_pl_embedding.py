"""The UMAP plotter: one panel per key, the embedded points only, one legend entry per group."""

from __future__ import annotations

import numpy as np
import pandas as pd

from immunoprofiler.pl.embedding import umap_scatter


def test_umap_scatter_panels_points_and_legends():
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(300, 2)).astype(np.float32)
    emb[:50] = np.nan  # not embedded (outside the subsample)
    obs = pd.DataFrame(
        {
            "cell_type": rng.choice(["B cell", "NK cell", "CD4 T cell"], 300),
            "batch": np.repeat(["b1", "b2"], 150),
        }
    )
    fig = umap_scatter(emb, obs, keys=("cell_type", "batch", "absent"), title="demo")
    axes = fig.axes
    assert [ax.get_title() for ax in axes] == ["cell_type", "batch"]  # missing keys skipped
    for ax, key in zip(axes, ("cell_type", "batch"), strict=True):
        points = ax.collections[0]
        assert len(points.get_offsets()) == 250  # the embedded rows, nothing else
        labels = [t.get_text() for t in ax.get_legend().get_texts()]
        assert labels == sorted(set(obs[key]))
        assert ax.get_xlabel() == "UMAP 1"
        # one colour per group: as many distinct face colours as groups present
        assert len({tuple(c) for c in points.get_facecolors()}) == obs[key].nunique()
        # and each point has its group's legend colour (points drawn in the seeded order)
        drawn = obs[key].to_numpy()[50:][np.random.default_rng(0).permutation(250)]
        legend = dict(zip(labels, ax.get_legend().legend_handles, strict=True))
        for group in labels:
            want = legend[group].get_facecolor()[0]
            np.testing.assert_array_equal(
                points.get_facecolors()[drawn == group][:, :3], [want[:3]] * (drawn == group).sum()
            )
    assert fig._suptitle.get_text() == "demo"
    # the drawing order is shuffled (no batch drawn over another) but the same every time
    again = umap_scatter(emb, obs, keys=("batch",))
    np.testing.assert_array_equal(
        again.axes[0].collections[0].get_offsets(), axes[1].collections[0].get_offsets()
    )
