"""Seeded subsamples that cohort steps fit their models on (memory and time independent of
the cohort size; the fitted model is then applied to every file)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def balanced_subsample(groups: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Sorted row indices: up to ``n`` rows, as evenly as possible from each group.

    Small groups give all their rows; the others share the rest evenly (water-filling).

    Examples
    --------
    >>> balanced_subsample(np.array(["a"] * 10 + ["b"] * 2), 6, seed=0).size
    6
    """
    rng = np.random.default_rng(seed)
    names, inv = np.unique(groups, return_inverse=True)
    sizes = np.bincount(inv)
    if sizes.sum() <= n:
        return np.arange(len(groups))
    quota = np.zeros_like(sizes)
    left = n
    for i in np.argsort(sizes):
        share = left // (len(sizes) - int((quota > 0).sum()))
        quota[i] = min(sizes[i], share)
        left -= quota[i]
    picks = [
        rng.choice(np.flatnonzero(inv == i), quota[i], replace=False) for i in range(len(names))
    ]
    return np.sort(np.concatenate(picks))


def per_file_subsample(sizes: Sequence[int], n: int, seed: int) -> list[np.ndarray]:
    """For files of ``sizes`` events, sorted event indices of each: ``n // len(sizes)`` per
    file (at least one; all of a smaller file), drawn file after file from one seeded
    generator — so a file's draw needs only its own events in memory.

    Examples
    --------
    >>> [len(p) for p in per_file_subsample([100, 3, 50], 30, seed=0)]
    [10, 3, 10]
    """
    per_file = max(n // max(len(sizes), 1), 1)
    rng = np.random.default_rng(seed)
    return [np.sort(rng.choice(size, min(per_file, size), replace=False)) for size in sizes]
