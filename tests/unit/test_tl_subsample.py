"""Seeded subsamples the cohort fits use."""

from __future__ import annotations

import numpy as np

from immunoprofiler.tl.subsample import balanced_subsample, per_file_subsample


def test_balanced_subsample_is_even_seeded_and_sorted():
    groups = np.repeat(["a", "b", "c"], [10, 1000, 5000])
    idx = balanced_subsample(groups, 300, seed=0)
    assert len(idx) == 300 and (np.diff(idx) > 0).all()
    counts = {g: (groups[idx] == g).sum() for g in "abc"}
    assert counts == {"a": 10, "b": 145, "c": 145}
    np.testing.assert_array_equal(idx, balanced_subsample(groups, 300, seed=0))
    assert len(balanced_subsample(groups, 10_000, seed=0)) == len(groups)


def test_per_file_subsample_quota_seed_and_order():
    picks = per_file_subsample([100, 3, 50], 30, seed=0)
    assert [len(p) for p in picks] == [10, 3, 10]
    assert all((np.diff(p) > 0).all() for p in picks)
    assert picks[1].tolist() == [0, 1, 2]  # a file smaller than its quota gives every event
    again = per_file_subsample([100, 3, 50], 30, seed=0)
    assert all((a == b).all() for a, b in zip(picks, again, strict=True))
    assert [len(p) for p in per_file_subsample([5, 5], 1, seed=0)] == [1, 1]  # at least one
    # one generator drawn file after file: the same as drawing each in turn by hand
    rng = np.random.default_rng(0)
    first = np.sort(rng.choice(100, 10, replace=False))
    np.testing.assert_array_equal(picks[0], first)


def test_balanced_blocks_equals_balanced_subsample_of_the_same_rows():
    from immunoprofiler.tl.subsample import balanced_blocks

    names, sizes = ["S3", "S1", "S10", "S2"], [500, 20, 1000, 300]
    groups = np.repeat(names, sizes)
    starts = np.cumsum([0, *sizes[:-1]])
    blocks = [(n, slice(a, a + k)) for n, a, k in zip(names, starts, sizes, strict=True)]
    for n in (10, 100, 600, 5000):
        for seed in (0, 1):
            np.testing.assert_array_equal(
                balanced_blocks(blocks, n, seed), balanced_subsample(groups, n, seed)
            )
