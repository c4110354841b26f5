"""Differential abundance of cell types between two groups of samples.

A propeller-style test (Phipson et al. 2022, *Bioinformatics* 38:4720): per sample and cell type
abundances are transformed, one linear model per cell type is fitted on the samples (group, plus
one block per ``paired_by`` value when samples are paired), and the residual variances are
moderated with limma's empirical Bayes (Smyth 2004) before the t-test, so cohorts of a few
samples per group still give usable p-values. Benjamini–Hochberg q-values are taken across the
cell types of one modality and level.

The default scale, ``log_ratio``, is log2 counts over median-of-ratios size factors: when one
population expands, the fractions of all the others fall (closure) and a test on proportions
(propeller's ``logit``) calls them changed too; relative to the typical cell type they do not
change. ``logit`` and ``asin`` (proportions, as propeller) remain available.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import special, stats

logger = logging.getLogger(__name__)

DA_COLUMNS = [
    "modality",
    "level",
    "cell_type",
    "group_a",
    "group_b",
    "n_a",
    "n_b",
    "mean_fraction_a",
    "mean_fraction_b",
    "log2_fold_change",
    "coef",
    "t",
    "df",
    "p_value",
    "q_value",
    "paired_by",
    "covariates",
    "transform",
    "note",
]


def _trigamma_inverse(x: np.ndarray) -> np.ndarray:
    """Solve trigamma(y) = x by Newton's method (as limma's ``trigammaInverse``)."""
    x = np.asarray(x, dtype=float)
    y = np.where(x > 1e7, 1.0 / np.sqrt(np.maximum(x, 1e-300)), 0.5 + 1.0 / x)
    big = x < 1e-6
    y = np.where(big, 1.0 / np.maximum(x, 1e-300), y)
    todo = ~(x > 1e7) & ~big
    for _ in range(50):
        tri = special.polygamma(1, y)
        dif = tri * (1 - tri / x) / special.polygamma(2, y)
        y = np.where(todo, y + dif, y)
        if np.all(np.abs(np.where(todo, -dif / y, 0)) < 1e-8):
            break
    return y


def _spline_basis(x: np.ndarray, n: int) -> np.ndarray:
    """limma's ``fitFDist`` trend basis: an intercept and a natural cubic spline of ``x`` with
    1 + (n >= 3) + (n >= 6) + (n >= 30) degrees of freedom (a line for few features)."""
    k = 1 + (n >= 3) + (n >= 6) + (n >= 30)
    if k <= 2 or np.unique(x).size < 4:
        return np.column_stack([np.ones_like(x), x][: min(k, 2)])
    import patsy

    return np.asarray(patsy.dmatrix(f"cr(x, df={k})", {"x": x}, return_type="matrix"))


def squeeze_var(
    s2: np.ndarray, df: float | np.ndarray, covariate: np.ndarray | None = None
) -> tuple[np.ndarray, float, float | np.ndarray]:
    """Empirical-Bayes posterior variances: ``(s2_post, d0, s0_2)`` (limma's fitFDist/squeezeVar).
    ``df``: the residual degrees of freedom, one for all or one per variance. With
    ``covariate`` (limma's ``trend=TRUE``: e.g. each gene's mean log-expression) the prior
    variance ``s0_2`` is a smooth function of it, one value per variance.

    Examples
    --------
    >>> post, d0, s02 = squeeze_var(np.array([0.5, 1.0, 2.0, 1.5]), 4.0)
    >>> bool(np.all(post > 0))
    True
    """
    s2 = np.maximum(np.asarray(s2, dtype=float), 1e-12)
    df = np.broadcast_to(np.asarray(df, dtype=float), s2.shape)
    n = len(s2)
    z = np.log(s2)
    e = z - special.digamma(df / 2) + np.log(df / 2)
    if covariate is not None and n > 1:
        B = _spline_basis(np.asarray(covariate, dtype=float), n)
        emean = B @ np.linalg.lstsq(B, e, rcond=None)[0]
        n_par = np.linalg.matrix_rank(B)
    else:
        emean, n_par = e.mean(), 1
    evar = (np.sum((e - emean) ** 2) / (n - n_par) if n > n_par else 0.0) - np.mean(
        special.polygamma(1, df / 2)
    )
    if n > 1 and evar > 0:
        d0 = float(2 * _trigamma_inverse(np.array([evar]))[0])
        s02 = np.exp(emean + special.digamma(d0 / 2) - np.log(d0 / 2))
        post = (d0 * s02 + df * s2) / (d0 + df)
    else:  # no evidence of variance heterogeneity: pool completely
        d0, s02 = np.inf, np.exp(emean)
        post = np.broadcast_to(s02, s2.shape).astype(float)
    return post, d0, (float(s02) if np.ndim(s02) == 0 else s02)


def moderated_t(
    Y: np.ndarray, X: np.ndarray, coef: int = 1, trend: np.ndarray | None = None
) -> pd.DataFrame:
    """limma's ``lmFit`` + ``eBayes`` for one coefficient of the design ``X`` (samples ×
    terms), every column of ``Y`` (samples × features) its own linear model; with ``trend``
    (one value per feature, e.g. mean log-expression) ``eBayes(trend=TRUE)``.

    A missing value (NaN) leaves that sample out of that feature's model (as limma): features
    are fitted in groups sharing the samples they have, each with its own residual degrees of
    freedom. A feature whose samples cannot estimate ``coef`` (one group left) gets NaN; one
    with no residual degree of freedom its estimate only. The residual variances of the
    others are moderated together (:func:`squeeze_var`).

    Returns one row per feature: ``coef`` (the estimate), ``t``, ``df`` (residual + prior),
    ``p_value``.
    """
    Y = np.asarray(Y, dtype=float)
    n_feat = Y.shape[1]
    beta, unscaled, s2, df_res = (np.full(n_feat, np.nan) for _ in range(4))
    seen = ~np.isnan(Y)
    patterns, which = np.unique(seen.T, axis=0, return_inverse=True)
    for k, rows in enumerate(patterns):
        cols = np.flatnonzero(which.ravel() == k)
        Xs = X[rows]
        Xs = Xs[:, (Xs != 0).any(axis=0) | (np.arange(X.shape[1]) == coef)]
        j = int(np.sum((X[rows] != 0).any(axis=0)[:coef]))  # coef's column in Xs
        rank = np.linalg.matrix_rank(Xs)
        if rank == np.linalg.matrix_rank(np.delete(Xs, j, axis=1)):
            continue  # coef not estimable from these samples (one group left)
        inv = np.linalg.pinv(Xs.T @ Xs)
        b = inv @ Xs.T @ Y[np.ix_(rows, cols)]
        beta[cols], unscaled[cols] = b[j], inv[j, j]
        if rows.sum() - rank >= 1:  # else an estimate without a variance
            resid = Y[np.ix_(rows, cols)] - Xs @ b
            df_res[cols] = rows.sum() - rank
            s2[cols] = (resid**2).sum(axis=0) / df_res[cols]
    out = pd.DataFrame({"coef": beta, "t": np.nan, "df": np.nan, "p_value": np.nan})
    ok = np.isfinite(s2)
    if not ok.any():
        return out
    post, d0, s02 = squeeze_var(
        s2[ok], df_res[ok], None if trend is None else np.asarray(trend, dtype=float)[ok]
    )
    t = beta[ok] / np.sqrt(post * unscaled[ok])
    df_total = df_res[ok] + d0 if np.isfinite(d0) else np.full(ok.sum(), np.inf)
    p = np.where(
        np.isfinite(df_total),
        2 * stats.t.sf(np.abs(t), np.where(np.isfinite(df_total), df_total, 1)),
        2 * stats.norm.sf(np.abs(t)),
    )
    logger.info("eBayes: prior df %.2f, prior variance %.4g", d0, np.median(s02))
    out.loc[ok, "t"], out.loc[ok, "df"], out.loc[ok, "p_value"] = t, df_total, p
    return out


def size_factors(counts: pd.DataFrame) -> pd.Series:
    """Per-sample size factors by the median of ratios (as DESeq2, over cell types).

    Unlike the total, the median ratio to the across-sample geometric mean does not move when
    one or a few cell types expand, so the others are not pulled down by the closure of
    proportions. Only types seen in every sample enter the median (all types when none is).
    """
    logc = np.log(counts.to_numpy(float) + 0.5)
    seen = (counts > 0).all(axis=0).to_numpy()
    if seen.sum() < 2:
        seen[:] = True
    ratios = logc[:, seen] - logc[:, seen].mean(axis=0)
    lsf = np.median(ratios, axis=1)
    return pd.Series(np.exp(lsf - lsf.mean()), index=counts.index)


def transform_proportions(counts: pd.DataFrame, method: str = "log_ratio") -> pd.DataFrame:
    """Samples × cell types counts → the scale the linear model is fitted on.

    ``log_ratio``: log2 of counts (0.5 pseudo-count) over median-of-ratios size factors, i.e.
    abundance relative to the typical cell type (robust to compositional closure);
    ``logit``: logit of proportions (propeller); ``asin``: arcsine square root of proportions.
    """
    if method == "log_ratio":
        return np.log2(counts + 0.5).sub(np.log2(size_factors(counts)), axis=0)
    if method == "logit":
        p = (counts + 0.5).div(counts.sum(axis=1) + 0.5 * counts.shape[1], axis=0)
        return np.log(p / (1 - p))
    if method == "asin":
        p = counts.div(counts.sum(axis=1), axis=0)
        return np.arcsin(np.sqrt(p))
    raise ValueError(f"unknown transform '{method}' (log_ratio, logit or asin)")


def _bh(p: np.ndarray) -> np.ndarray:
    out = np.full(len(p), np.nan)
    ok = ~np.isnan(p)
    if ok.any():
        out[ok] = stats.false_discovery_control(p[ok], method="bh")
    return out


def differential_abundance(
    counts: pd.DataFrame,
    samples: pd.DataFrame,
    *,
    column: str,
    groups: Sequence[str],
    paired_by: str | None = None,
    transform: str = "log_ratio",
    covariates: Sequence[str] = (),
) -> pd.DataFrame:
    """Test every cell type's abundance between ``groups[0]`` (a) and ``groups[1]`` (b).

    Parameters
    ----------
    counts
        Samples (index) × cell types, cell counts.
    samples
        Sample metadata indexed like ``counts``, with ``column`` (and ``paired_by``).
    column, groups
        The sheet column and its two values to compare; other samples are left out.
    paired_by
        A column such as ``patient``: a block per value, so the group effect is estimated
        within pairs (blocks seen in only one group carry no within-pair information and are
        dropped).
    covariates
        Further sheet columns in the design (e.g. ``batch``, ``sex``; :func:`design_matrix`).

    Returns
    -------
    One row per cell type (columns :data:`DA_COLUMNS` without ``modality``/``level``). With
    fewer than two samples per group (or no residual degrees of freedom) the rows carry the
    reason in ``note`` and no p-values.

    Examples
    --------
    >>> differential_abundance(counts, meta, column="response", groups=["NR", "R"])  # doctest: +SKIP
    """
    ga, gb = (str(g) for g in groups)
    meta, _ = select_samples(
        samples.loc[counts.index], column, groups, paired_by=paired_by, covariates=covariates
    )
    counts = counts.loc[meta.index]
    counts = counts.loc[:, counts.sum(axis=0) > 0]
    is_b = (meta[column] == gb).to_numpy()
    n_a, n_b = int((~is_b).sum()), int(is_b.sum())
    frac = counts.div(counts.sum(axis=1), axis=0)
    base = pd.DataFrame(
        {
            "cell_type": counts.columns,
            "group_a": ga,
            "group_b": gb,
            "n_a": n_a,
            "n_b": n_b,
            "mean_fraction_a": frac.loc[~is_b].mean().to_numpy() if n_a else np.nan,
            "mean_fraction_b": frac.loc[is_b].mean().to_numpy() if n_b else np.nan,
            "paired_by": paired_by or "",
            "covariates": ",".join(covariates),
            "transform": transform,
        }
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        base["log2_fold_change"] = np.log2(base["mean_fraction_b"] / base["mean_fraction_a"])
    X = design_matrix(meta, column, gb, paired_by, covariates)
    df_res = len(meta) - np.linalg.matrix_rank(X)
    note = ""
    if min(n_a, n_b) < 2:
        unit = f"pairs by {paired_by}" if paired_by else "samples"
        note = (
            f"not tested: {ga} has {n_a} and {gb} has {n_b} {unit}; at least 2 per group are needed"
        )
    elif df_res < 1 or counts.shape[1] < 2:
        note = "not tested: no residual degrees of freedom"
    if note:
        logger.warning("differential abundance %s: %s", column, note)
        out = base.assign(coef=np.nan, t=np.nan, df=np.nan, p_value=np.nan, q_value=np.nan)
        return out.assign(note=note)
    Y = transform_proportions(counts, transform).to_numpy()
    fit = moderated_t(Y, X, coef=1)
    return base.assign(
        coef=fit["coef"].to_numpy(),
        t=fit["t"].to_numpy(),
        df=fit["df"].to_numpy(),
        p_value=fit["p_value"].to_numpy(),
        q_value=_bh(fit["p_value"].to_numpy()),
        note="",
    )


def select_samples(
    samples: pd.DataFrame,
    column: str,
    groups: Sequence[str],
    *,
    paired_by: str | None = None,
    covariates: Sequence[str] = (),
) -> tuple[pd.DataFrame, list[str]]:
    """The samples a contrast compares: those whose ``column`` is one of the two ``groups``
    (as strings), and with ``paired_by`` only complete pairs. Returns them and the samples
    of the groups left out for want of a partner.

    Raises
    ------
    ValueError
        Not two different groups.
    KeyError
        A column of the contrast (``column``, ``paired_by``, ``covariates``) is not in the sheet.
    """
    if len(groups) != 2 or str(groups[0]) == str(groups[1]):
        raise ValueError(f"contrast needs two different groups, got {list(groups)}")
    for col in [column] + ([paired_by] if paired_by else []) + list(covariates):
        if col not in samples:
            raise KeyError(f"the sample sheet has no column '{col}' (contrast)")
    meta = samples.copy()
    meta[column] = meta[column].astype(str)
    keep = meta[column].isin([str(g) for g in groups])
    unpaired: list[str] = []
    if paired_by:
        blocks = meta.loc[keep].groupby(paired_by)[column].nunique()
        paired = keep & meta[paired_by].isin(blocks.index[blocks == 2])
        unpaired = [str(s) for s in meta.index[keep & ~paired]]
        keep = paired
    return meta.loc[keep], unpaired


def require_pairs(
    analysis: str, unpaired_only: Sequence[str], n_units: int, groups: Sequence[str], paired_by
) -> None:
    """Raise when every unit of an analysis (``n_units`` modalities or cell types, each tested
    on its own) lost all its samples to pairing (``unpaired_only``): a paired design with no
    complete pair anywhere is a sheet problem, not a result."""
    if unpaired_only and len(unpaired_only) == n_units:
        raise ValueError(
            f"{analysis}: no sample of {groups[0]} has a {groups[1]} partner by "
            f"'{paired_by}' in {', '.join(unpaired_only)}: nothing can be tested paired "
            f"(check the sheet's '{paired_by}' column, or leave paired_by out)"
        )


def design_matrix(
    meta: pd.DataFrame,
    column: str,
    test_group: str,
    paired_by: str | None = None,
    covariates: Sequence[str] = (),
) -> np.ndarray:
    """The samples' design: intercept, ``test_group`` indicator (column 1: the tested
    coefficient), one column per ``paired_by`` value but the first (a block per pair) and
    the ``covariates``: numeric ones as they are, others one column per level but the first.
    """
    X = [np.ones(len(meta)), (meta[column].astype(str) == test_group).to_numpy(float)]
    for col in ([paired_by] if paired_by else []) + list(covariates):
        values = meta[col]
        if pd.api.types.is_numeric_dtype(values) and col != paired_by:
            X.append(values.to_numpy(float))
            continue
        levels = sorted(values.astype(str).unique())
        X += [(values.astype(str) == lv).to_numpy(float) for lv in levels[1:]]
    return np.column_stack(X)


def differential_abundance_table(
    composition: pd.DataFrame,
    samples: pd.DataFrame,
    *,
    column: str,
    groups: Sequence[str],
    paired_by: str | None = None,
    transform: str = "log_ratio",
    covariates: Sequence[str] = (),
) -> pd.DataFrame:
    """Run :func:`differential_abundance` per modality, on fine cell types and on lineages.

    A modality analysed in several panel groups is tested per group (``modality`` is then
    ``<modality>:<panel group>``, :func:`immunoprofiler.tl.abundance.views`).

    ``composition`` is the long table of :func:`immunoprofiler.tl.abundance.composition`
    (``sample_id``, ``modality``, ``cell_type``, ``lineage``, ``n_cells``); ``samples`` holds one
    row per ``sample_id`` (the sheet's metadata).
    """
    from .abundance import views

    meta = samples.drop_duplicates("sample_id").set_index("sample_id")
    tables = []
    for modality, comp in composition.groupby(views(composition), sort=True):
        for level in ("cell_type", "lineage"):
            wide = comp.pivot_table(
                index="sample_id", columns=level, values="n_cells", aggfunc="sum", fill_value=0
            )
            wide = wide.loc[wide.index.isin(meta.index)]
            res = differential_abundance(
                wide,
                meta,
                column=column,
                groups=groups,
                paired_by=paired_by,
                transform=transform,
                covariates=covariates,
            )
            tables.append(res.assign(modality=modality, level=level))
    if not tables:
        return pd.DataFrame(columns=DA_COLUMNS)
    out = pd.concat(tables, ignore_index=True)[DA_COLUMNS]
    return out.sort_values(["modality", "level", "p_value"], ignore_index=True)
