from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import special, stats

from immunoprofiler.tl.differential import (
    DA_COLUMNS,
    _trigamma_inverse,
    differential_abundance,
    differential_abundance_table,
    squeeze_var,
)

TYPES = [f"T{i}" for i in range(8)]


def _cohort(n_per_group=4, effect=3.0, seed=0, paired=False):
    """Dirichlet-multinomial counts; T0 is `effect`-fold more abundant in group R."""
    rng = np.random.default_rng(seed)
    base = np.array([0.05, 0.25, 0.2, 0.15, 0.12, 0.1, 0.08, 0.05])
    rows, meta = [], []
    for g in ("NR", "R"):
        for i in range(n_per_group):
            patient = f"P{i}" if paired else f"{g}{i}"
            patient_shift = np.random.default_rng(100 + i).normal(0, 0.3, len(base))
            w = base * np.exp(patient_shift if paired else 0)
            if g == "R":
                w = w.copy()
                w[0] *= effect
            p = rng.dirichlet(100 * w / w.sum())
            rows.append(rng.multinomial(5000, p))
            meta.append({"sample_id": f"{g}_{i}", "response": g, "patient": patient})
    meta = pd.DataFrame(meta).set_index("sample_id")
    return pd.DataFrame(rows, index=meta.index, columns=TYPES), meta


def test_trigamma_inverse_and_squeeze_var():
    y = np.array([0.1, 1.0, 5.0, 50.0])
    np.testing.assert_allclose(
        special.polygamma(1, _trigamma_inverse(special.polygamma(1, y))),
        special.polygamma(1, y),
        rtol=1e-6,
    )
    rng = np.random.default_rng(0)
    s2 = rng.chisquare(4, 200) / 4 * 0.5  # true variance 0.5, 4 df, no heterogeneity
    post, d0, s02 = squeeze_var(s2, 4.0)
    assert d0 > 20 and s02 == pytest.approx(0.5, rel=0.2)
    assert post.std() < s2.std() / 3  # shrunk towards the prior
    hetero = np.exp(rng.normal(0, 1.5, 200)) * rng.chisquare(4, 200) / 4
    assert squeeze_var(hetero, 4.0)[1] < 10  # heterogeneous variances: little shrinkage


def test_finds_the_effect_and_not_the_null_types():
    counts, meta = _cohort()
    res = differential_abundance(counts, meta, column="response", groups=["NR", "R"])
    res = res.set_index("cell_type")
    assert res.loc["T0", "q_value"] < 0.01 and res.loc["T0", "coef"] > 0
    # true fold change of the fraction: 3 × 0.05 / 1.1 over 0.05, log2 ≈ 1.45
    assert 0.6 < res.loc["T0", "log2_fold_change"] < 2.2
    assert (res.drop("T0")["q_value"] >= 0.05).all(), res["q_value"]
    assert (res["n_a"] == 4).all() and (res["n_b"] == 4).all()
    assert res.loc["T0", "mean_fraction_b"] > res.loc["T0", "mean_fraction_a"]


def test_a_covariate_enters_the_design_and_the_table():
    """A batch shift of every type but T0 in half of each group: with ``batch`` as a
    covariate the effect is still found alone, and the table records the design."""
    counts, meta = _cohort()
    meta["batch"] = ["b1", "b2"] * 4
    counts.loc[meta["batch"] == "b2", counts.columns[1:4]] *= 2
    res = differential_abundance(
        counts, meta, column="response", groups=["NR", "R"], covariates=["batch"]
    ).set_index("cell_type")
    assert res.loc["T0", "q_value"] < 0.05 and (res.drop("T0")["q_value"] >= 0.05).all()
    assert (res["covariates"] == "batch").all() and (res["df"] > 0).all()


def test_logit_coefficient_is_the_difference_of_group_means():
    counts, meta = _cohort(effect=1.0, seed=3)
    res = differential_abundance(
        counts, meta, column="response", groups=["NR", "R"], transform="logit"
    ).set_index("cell_type")
    # the coefficient is exactly the difference of group means of the logit proportions
    p = (counts + 0.5).div(counts.sum(axis=1) + 0.5 * counts.shape[1], axis=0)
    logit = np.log(p / (1 - p))
    diff = logit[meta["response"] == "R"].mean() - logit[meta["response"] == "NR"].mean()
    np.testing.assert_allclose(res["coef"], diff[res.index], rtol=1e-10)
    # and the moderated df are at least the residual df (6)
    assert (res["df"] >= 6).all()
    assert (res["p_value"] > 0).all() and (res["p_value"] <= 1).all()


def test_paired_design_uses_within_patient_differences():
    counts, meta = _cohort(effect=1.6, seed=1, paired=True)
    kw = {"column": "response", "groups": ["NR", "R"], "transform": "logit"}
    unpaired = differential_abundance(counts, meta, **kw).set_index("cell_type")
    paired = differential_abundance(counts, meta, paired_by="patient", **kw).set_index("cell_type")
    assert paired.loc["T0", "p_value"] < unpaired.loc["T0", "p_value"]
    assert paired.loc["T0", "q_value"] < 0.05
    # with one block per patient the paired estimate equals the mean within-patient difference
    p = (counts + 0.5).div(counts.sum(axis=1) + 0.5 * counts.shape[1], axis=0)
    logit = np.log(p / (1 - p))
    d = logit[meta["response"] == "R"].to_numpy() - logit[meta["response"] == "NR"].to_numpy()
    assert paired.loc["T0", "coef"] == pytest.approx(d[:, 0].mean())
    # a paired t-test on the same values agrees in sign and is of the same order
    assert stats.ttest_1samp(d[:, 0], 0).pvalue < 0.05


def test_too_few_samples_gives_a_note_not_a_crash():
    counts, meta = _cohort(n_per_group=1)
    res = differential_abundance(counts, meta, column="response", groups=["NR", "R"])
    assert res["p_value"].isna().all()
    assert res["note"].str.contains("at least 2 per group").all()
    with pytest.raises(KeyError, match="no column 'arm'"):
        differential_abundance(counts, meta, column="arm", groups=["a", "b"])
    with pytest.raises(ValueError, match="two different groups"):
        differential_abundance(counts, meta, column="response", groups=["R", "R"])


def test_table_per_modality_and_level():
    counts, meta = _cohort()
    long = counts.stack().rename("n_cells").reset_index()
    long.columns = ["sample_id", "cell_type", "n_cells"]
    long["lineage"] = np.where(long["cell_type"].isin(["T0", "T1"]), "L1", "L2")
    long = pd.concat([long.assign(modality="rna"), long.assign(modality="cytof")])
    res = differential_abundance_table(
        long, meta.reset_index(), column="response", groups=["NR", "R"]
    )
    assert list(res.columns) == DA_COLUMNS
    assert set(res["modality"]) == {"rna", "cytof"} and set(res["level"]) == {
        "cell_type",
        "lineage",
    }
    assert len(res) == 2 * (8 + 2)
    assert (
        res.groupby(["modality", "level"])["q_value"]
        .apply(lambda q: (q >= res["p_value"].min()).all())
        .all()
    )


def test_log_ratio_is_robust_to_closure_where_proportions_are_not():
    """One population expands 4-fold with almost no noise: on proportions every other type
    falls (closure) and is called; relative to the typical type only the expanded one is."""
    base = np.array([0.04, 0.3, 0.2, 0.16, 0.12, 0.1, 0.08])
    rows, meta = [], []
    for g in ("NR", "R"):
        for i in range(3):
            w = base.copy()
            if g == "R":
                w[0] *= 4
            rows.append(np.round(200_000 * w / w.sum() * (1 + 0.01 * np.sin(np.arange(7) + i))))
            meta.append({"sample_id": f"{g}{i}", "response": g})
    meta = pd.DataFrame(meta).set_index("sample_id")
    counts = pd.DataFrame(rows, index=meta.index, columns=[f"T{i}" for i in range(7)])
    kw = {"column": "response", "groups": ["NR", "R"]}
    logit = differential_abundance(counts, meta, transform="logit", **kw).set_index("cell_type")
    ratio = differential_abundance(counts, meta, **kw).set_index("cell_type")
    assert (logit["q_value"] < 0.05).all()  # closure: all "changed"
    assert ratio.loc["T0", "q_value"] < 0.05 and (ratio.drop("T0")["q_value"] >= 0.05).all()
    assert ratio.loc["T0", "coef"] == pytest.approx(2.0, abs=0.05)  # log2(4)


def test_squeeze_var_with_a_trend_follows_the_prior_variance_along_the_covariate():
    """limma's eBayes(trend=TRUE): variances whose prior level falls with mean expression are
    squeezed towards that trend, not towards one pooled value; a flat covariate changes
    nothing."""
    from immunoprofiler.tl.differential import squeeze_var

    rng = np.random.default_rng(0)
    A = rng.uniform(0, 10, 3000)
    s0 = 0.5 * np.exp(-0.3 * A)  # prior variance: high for weak genes
    sigma2 = s0 * 6 / rng.chisquare(6, A.size)  # limma's prior: scaled inverse chi2, d0 = 6
    s2 = sigma2 * rng.chisquare(4, A.size) / 4  # then 4 residual df
    _, d0, s02 = squeeze_var(s2, 4.0, covariate=A)
    assert np.shape(s02) == A.shape and d0 == pytest.approx(6, abs=1)  # the simulated prior
    assert np.median(np.abs(np.log(s02 / s0))) < 0.05
    flat, d0_flat, _ = squeeze_var(s2, 4.0)
    assert d0_flat < d0 - 2  # one pooled prior mistakes the trend for gene-to-gene spread
    same = squeeze_var(s2, 4.0, covariate=np.zeros_like(A))
    np.testing.assert_allclose(same[0], flat)
    assert same[1] == pytest.approx(d0_flat)
