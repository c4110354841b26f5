"""Seeded subsamples that cohort steps fit their models on (memory and time independent of
the cohort size; the fitted model is then applied to every file)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _quotas(sizes: np.ndarray, n: int) -> np.ndarray:
    """Rows to draw from each group: small groups give all their rows, the others share
    the rest evenly (water-filling)."""
    quota = np.zeros_like(sizes)
    left = n
    for i in np.argsort(sizes):
        share = left // (len(sizes) - int((quota > 0).sum()))
        quota[i] = min(sizes[i], share)
        left -= quota[i]
    return quota


def balanced_subsample(groups: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Sorted row indices: up to ``n`` rows, as evenly as possible from each group.

    Small groups give all their rows; the others share the rest evenly (water-filling).

    Examples
    --------
    >>> balanced_subsample(np.array(["a"] * 10 + ["b"] * 2), 6, seed=0).size
    6
    """
    names, inv = np.unique(groups, return_inverse=True)
    sizes = np.bincount(inv)
    if sizes.sum() <= n:
        return np.arange(len(groups))
    quota = _quotas(sizes, n)
    rng = np.random.default_rng(seed)
    picks = [
        np.flatnonzero(inv == i)[rng.choice(sizes[i], quota[i], replace=False)]
        for i in range(len(names))
    ]
    return np.sort(np.concatenate(picks))


def balanced_blocks(blocks: Sequence[tuple[str, slice]], n: int, seed: int) -> np.ndarray:
    """:func:`balanced_subsample` of a cohort file whose groups are contiguous row blocks
    (``(name, slice)``, :func:`immunoprofiler.io.h5ad.obs_blocks`): the same rows, without an
    array of every row's group.

    Examples
    --------
    >>> balanced_blocks([("b", slice(0, 10)), ("a", slice(10, 12))], 6, seed=0).size
    6
    """
    order = sorted(range(len(blocks)), key=lambda i: blocks[i][0])  # np.unique's order
    starts = np.array([blocks[i][1].start for i in order], dtype=np.int64)
    sizes = np.array([blocks[i][1].stop - blocks[i][1].start for i in order], dtype=np.int64)
    if sizes.sum() <= n:
        return np.arange(int(sizes.sum()))
    quota = _quotas(sizes, n)
    rng = np.random.default_rng(seed)
    picks = [
        a + rng.choice(k, q, replace=False) for a, k, q in zip(starts, sizes, quota, strict=True)
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
