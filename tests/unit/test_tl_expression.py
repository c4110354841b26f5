"""Pseudobulk differential expression (PyDESeq2 per cell type) on counts with a known truth."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from immunoprofiler.pl.profile import top_genes
from immunoprofiler.tl.expression import DE_COLUMNS, differential_expression_table, filter_by_expr

UP = [f"g{i}" for i in range(20)]  # 4x up in CD8 T cells after stimulation


def _pseudobulk(n_patients=3, seed=0, few=("NK", "p0_stim", 3)):
    """Negative-binomial pseudobulk: patients × ctrl/stim × 3 cell types, 400 genes (50 never
    expressed), patient effects, ``UP`` 4x in CD8 T cells with stim, one type/sample with
    ``few`` cells."""
    rng = np.random.default_rng(seed)
    genes = [f"g{i}" for i in range(400)]
    base = rng.lognormal(3, 1.2, size=len(genes))
    base[: len(UP)] = rng.uniform(50, 500, size=len(UP))  # expressed enough to be seen
    base[-50:] = 0
    rows, X = [], []
    for p in range(n_patients):
        patient = rng.lognormal(0, 0.2, size=len(genes))
        for cond in ("ctrl", "stim"):
            s = f"p{p}_{cond}"
            for ct in ("CD8 T", "B cell", "NK"):
                mu = base * patient * rng.lognormal(0, 0.1)
                if ct == "CD8 T" and cond == "stim":
                    mu[: len(UP)] *= 4
                disp = 0.05
                X.append(rng.negative_binomial(1 / disp, 1 / (1 + mu * disp)))
                n = few[2] if (ct, s) == few[:2] else 200
                rows.append({"sample_id": s, "cell_type": ct, "n_cells": n})
    pb = ad.AnnData(
        X=np.array(X, dtype=np.int64),
        obs=pd.DataFrame(rows, index=[f"{r['sample_id']}|{r['cell_type']}" for r in rows]),
        var=pd.DataFrame(index=genes),
    )
    meta = pd.DataFrame(
        {
            "sample_id": [f"p{p}_{c}" for p in range(n_patients) for c in ("ctrl", "stim")],
            "patient": [f"p{p}" for p in range(n_patients) for _ in range(2)],
            "condition": ["ctrl", "stim"] * n_patients,
        }
    ).set_index("sample_id")
    return pb, meta


@pytest.mark.slow
def test_planted_genes_found_in_their_cell_type_only():
    pb, meta = _pseudobulk()
    res, design = differential_expression_table(
        pb, meta, column="condition", groups=["ctrl", "stim"], paired_by="patient"
    )
    assert list(res.columns) == DE_COLUMNS
    cd8 = res[res["cell_type"] == "CD8 T"]
    hits = set(cd8.loc[cd8["q_value"] < 0.05, "gene"])
    assert set(UP) <= hits and len(hits - set(UP)) <= 2  # BH at 5 %: ~1 false call expected
    up = cd8.set_index("gene").loc[UP, "log2FoldChange"]
    assert up.median() == pytest.approx(2.0, abs=0.3)
    assert (res.loc[res["cell_type"] == "B cell", "q_value"] >= 0.05).all()
    assert not set(res["gene"]) & {f"g{i}" for i in range(350, 400)}  # never expressed
    # NK: p0_stim has 3 cells, so p0 (both samples) leaves the paired NK test, and says why
    nk = design[design["cell_type"] == "NK"].set_index("sample_id")["use"]
    assert (
        nk["p0_stim"] == "fewer than 10 cells" and nk["p0_ctrl"] == "its partner has too few cells"
    )
    assert (res.loc[res["cell_type"] == "NK", "n_samples"] == 4).all()


@pytest.mark.slow
def test_one_sample_per_group_gives_effect_sizes_only():
    pb, meta = _pseudobulk(n_patients=1, few=("", "", 0))
    res, _ = differential_expression_table(pb, meta, column="condition", groups=["ctrl", "stim"])
    cd8 = res[res["cell_type"] == "CD8 T"]
    assert cd8["p_value"].isna().all() and cd8["note"].str.contains("effect sizes only").all()
    assert len(set(cd8["gene"].head(30)) & set(UP)) >= 15  # ranked by the size of the change


def test_filter_by_expr_keeps_genes_expressed_in_a_group():
    counts = np.array([[0, 100, 5, 0], [0, 120, 6, 0], [0, 0, 0, 40], [0, 0, 0, 50]])
    assert filter_by_expr(counts, 2).tolist() == [False, True, False, True]


def test_vectorised_starting_means_equal_pydeseq2s():
    """``_Inference.lin_reg_mu`` (one least-squares solve for all genes) gives PyDESeq2's
    per-gene scikit-learn fits, paired design included."""
    from pydeseq2.default_inference import DefaultInference

    from immunoprofiler.tl.expression import _Inference

    rng = np.random.default_rng(0)
    counts = rng.poisson(rng.gamma(2.0, 20.0, size=(1, 300)), size=(8, 300)).astype(float)
    sf = rng.uniform(0.5, 2.0, size=8)
    group = np.repeat([0.0, 1.0], 4)
    pair = np.tile(np.eye(4), (2, 1))[:, 1:]  # patients 2-4 (patient 1 in the intercept)
    for design in (
        np.column_stack([np.ones(8), group]),
        np.column_stack([np.ones(8), pair, group]),
    ):
        ours = _Inference(n_cpus=1).lin_reg_mu(counts, sf, design, 0.5)
        theirs = DefaultInference(n_cpus=1).lin_reg_mu(counts, sf, design, 0.5)
        np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=1e-9)


def test_all_zero_genes_and_an_all_zero_cell_type_are_reported_not_dropped():
    """The 50 never-expressed genes are filtered out (never tested, no error); a cell type
    whose counts are all zero keeps one row whose note says no gene passes the filter."""
    pb, meta = _pseudobulk(few=("", "", 0))
    pb.X[(pb.obs["cell_type"] == "NK").to_numpy()] = 0
    res, used = differential_expression_table(
        pb, meta, column="condition", groups=["ctrl", "stim"], paired_by="patient"
    )
    assert not set(res["gene"].dropna()) & {f"g{i}" for i in range(350, 400)}
    nk = res[res["cell_type"] == "NK"]
    assert len(nk) == 1 and nk["gene"].isna().all()
    assert "no gene passes the expression filter" in nk["note"].iloc[0]
    assert set(used.loc[used["cell_type"] == "NK", "use"]) == {"in the test"}
    assert res.loc[res["cell_type"] == "CD8 T", "p_value"].notna().all()


def test_a_group_with_no_sample_and_a_paired_design_without_pairs():
    pb, meta = _pseudobulk(few=("", "", 0))
    ctrl = pb[(pb.obs["sample_id"].str.endswith("ctrl")).to_numpy()].copy()
    res, _ = differential_expression_table(ctrl, meta, column="condition", groups=["ctrl", "stim"])
    assert len(res) == 3 and res["gene"].isna().all()  # one row per type, saying why
    assert res["note"].str.contains("not tested: 3 ctrl and 0 stim samples").all()
    top_genes(res)  # the report's figure draws the reason, not an empty bar chart
    meta["patient"] = [f"q{i}" for i in range(len(meta))]  # nobody has a partner
    with pytest.raises(ValueError, match="no sample of ctrl has a stim partner by 'patient'"):
        differential_expression_table(
            pb, meta, column="condition", groups=["ctrl", "stim"], paired_by="patient"
        )


def test_limma_trend_finds_the_planted_genes_in_their_cell_type_only():
    """muscat's limma-trend on the same pseudobulk: the 20 planted genes found in CD8 T
    cells with their 4x change, B cells quiet, the same columns and design table."""
    pb, meta = _pseudobulk(n_patients=4, few=("", "", 0))
    res, _ = differential_expression_table(
        pb,
        meta,
        column="condition",
        groups=["ctrl", "stim"],
        paired_by="patient",
        method="limma-trend",
    )
    assert list(res.columns) == DE_COLUMNS
    cd8 = res[res["cell_type"] == "CD8 T"]
    hits = set(cd8.loc[cd8["q_value"] < 0.05, "gene"])
    assert set(UP) <= hits and len(hits - set(UP)) <= 2
    up = cd8.set_index("gene").loc[UP]
    assert up["log2FoldChange"].median() == pytest.approx(2.0, abs=0.3)
    assert (up["lfcSE"] > 0).all() and np.allclose(up["stat"], up["log2FoldChange"] / up["lfcSE"])
    assert (res.loc[res["cell_type"] != "CD8 T", "q_value"] >= 0.05).all()
    assert not set(res["gene"]) & {f"g{i}" for i in range(350, 400)}  # filtered as for DESeq2
