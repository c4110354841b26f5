"""Landmark registration of type markers (pp.landmarks): peaks found, moved onto the
cohort's, proportions and unregistered markers untouched."""

from __future__ import annotations

import numpy as np
import pytest

from immunoprofiler.pp.landmarks import (
    MAX_DISTANCE,
    LandmarkRegistration,
    fit_landmarks,
    peaks,
)


def _sample(rng, n, positive, pos_at, neg_at=0.0, state_shift=0.0):
    """Two markers: a type marker with a fraction ``positive`` of cells at ``pos_at``, a
    state marker (unimodal) shifted by ``state_shift``."""
    k = int(n * positive)
    typ = np.concatenate([rng.normal(neg_at, 0.3, n - k), rng.normal(pos_at, 0.35, k)])
    state = rng.normal(1.0 + state_shift, 0.5, n)
    return np.column_stack([typ, state]).astype(np.float32)


def test_peaks_of_one_and_two_populations():
    rng = np.random.default_rng(0)
    neg, pos = peaks(np.concatenate([rng.normal(0.1, 0.3, 8000), rng.normal(3.2, 0.4, 800)]))
    assert abs(neg - 0.1) < 0.1 and abs(pos - 3.2) < 0.1  # a 9 % population is a peak
    neg, pos = peaks(rng.normal(0.5, 0.4, 5000))
    assert abs(neg - 0.5) < 0.1 and np.isnan(pos)
    # two bright populations: the positive landmark is the brightest clear one
    x = np.concatenate(
        [rng.normal(0, 0.3, 5000), rng.normal(2, 0.3, 2000), rng.normal(4, 0.3, 2000)]
    )
    assert abs(peaks(x)[1] - 4) < 0.1
    assert np.isnan(peaks(np.arange(10.0))).all()  # too few values to find a density


def test_registration_aligns_peaks_and_keeps_proportions_and_state_markers():
    rng = np.random.default_rng(1)
    data = {
        "ref1": _sample(rng, 20_000, 0.40, 3.6),
        "ref2": _sample(rng, 20_000, 0.35, 3.7),
        # stimulated: the type marker's positive cells dimmer, fewer of them, state up
        "stim1": _sample(rng, 20_000, 0.25, 2.8, state_shift=1.0),
        "stim2": _sample(rng, 20_000, 0.20, 2.9, neg_at=0.3, state_shift=1.0),
    }
    reg = fit_landmarks(data.items(), markers=["CD4", "pS6"], register=np.array([True, False]))
    assert np.isnan(reg.target[1]).all()  # the state marker is not registered
    found = []
    for name, X in data.items():
        out = reg.apply(X, name)
        np.testing.assert_array_equal(out[:, 1], X[:, 1])  # state values untouched
        neg, pos = peaks(out[:, 0])
        found.append(pos)
        assert abs(neg - reg.target[0, 0]) < 0.1
        # a monotone map: the cells above the sample's midpoint are the same cells after it
        mid = np.nanmean(reg.samples[name][0])
        mid_after = np.interp(mid, reg.samples[name][0], reg.target[0])
        np.testing.assert_array_equal(X[:, 0] > mid, out[:, 0] > mid_after)
    assert np.ptp(found) < 0.15  # positive peaks were 2.8–3.7 apart by 0.9
    assert abs(reg.target[0, 1] - np.median([3.6, 3.7, 2.8, 2.9])) < 0.15


def test_a_sample_without_positives_is_shifted_and_a_stand_in_peak_dropped():
    rng = np.random.default_rng(2)
    data = {f"s{i}": _sample(rng, 10_000, 0.3, 3.5) for i in range(4)}
    data["empty"] = _sample(rng, 10_000, 0.0, 3.5, neg_at=0.4)  # no positive cells at all
    # a dim population 1.5 above the others' bright one's position: another population
    data["odd"] = _sample(rng, 10_000, 0.3, 3.5 + MAX_DISTANCE + 0.5)
    reg = fit_landmarks(data.items(), markers=["CD20", "pS6"], register=np.array([True, False]))
    assert np.isnan(reg.samples["empty"][0, 1]) and np.isnan(reg.samples["odd"][0, 1])
    out = reg.apply(data["empty"], "empty")
    np.testing.assert_allclose(
        out[:, 0] - data["empty"][:, 0], reg.target[0, 0] - reg.samples["empty"][0, 0], atol=1e-5
    )


def test_registration_round_trips_and_names_an_unfitted_sample():
    rng = np.random.default_rng(3)
    data = {"a": _sample(rng, 5000, 0.3, 3.0), "b": _sample(rng, 5000, 0.3, 3.5)}
    reg = fit_landmarks(data.items(), markers=["CD7", "pErk"], register=np.array([True, False]))
    back = LandmarkRegistration.from_dict(reg.to_dict())
    np.testing.assert_array_equal(back.apply(data["b"], "b"), reg.apply(data["b"], "b"))
    assert set(reg.shifts()["a"]) == {"CD7", "pErk"}
    with pytest.raises(KeyError, match="sample 'c'"):
        reg.apply(data["a"], "c")
    with pytest.raises(ValueError, match="no samples"):
        fit_landmarks([], markers=["CD7"], register=np.array([True]))
