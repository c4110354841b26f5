"""The cohort rule functions on small tables written in the test."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from immunoprofiler.params import Contrast, DifferentialAbundance
from immunoprofiler.pipeline import (
    profile_differential_abundance,
    profile_qc_status,
    profile_tables,
)
from immunoprofiler.tl.abundance import COLUMNS
from tests.conftest import step_params

PAIRED = DifferentialAbundance(
    contrast=Contrast(column="timepoint", groups=("pre", "post"), paired_by="patient"),
    transform="log_ratio",
)


def _write(tmp_path, n_patients=3, effect=3.0):
    rng = np.random.default_rng(0)
    types = {
        "CD4 T cell": "T cell",
        "CD8 T cell": "T cell",
        "B cell": "B cell",
        "NK cell": "NK cell",
        "classical monocyte": "monocyte",
    }
    base = np.array([0.35, 0.2, 0.1, 0.1, 0.25])
    comp, sheet = [], []
    for p in range(n_patients):
        for tp in ("pre", "post"):
            w = base.copy()
            if tp == "post":
                w[2] *= effect
            for modality in ("rna", "cytof"):
                counts = rng.multinomial(3000, rng.dirichlet(200 * w / w.sum()))
                for (t, lin), n in zip(types.items(), counts, strict=True):
                    comp.append((f"P{p}_{tp}", modality, "", t, "CL:x", lin, n, n / counts.sum()))
                sheet.append((f"P{p}_{tp}", modality, f"x{p}{tp}.fcs", "b1", f"P{p}", tp))
    comp = pd.DataFrame(
        comp,
        columns=COLUMNS,
    )
    sheet = pd.DataFrame(
        sheet, columns=["sample_id", "modality", "path", "batch", "patient", "timepoint"]
    )
    comp.to_csv(tmp_path / "composition.tsv", sep="\t", index=False)
    return tmp_path / "composition.tsv", sheet.to_dict("records")


def test_profile_tables_writes_every_output(tmp_path):
    comp, sheet = _write(tmp_path)
    out = {
        k: tmp_path / f"{k}.{ext}"
        for k, ext in [
            ("wide", "tsv"),
            ("lineage_wide", "tsv"),
            ("cross", "tsv"),
            ("scatter", "png"),
            ("bars", "png"),
            ("cross_panel", "tsv"),
            ("panel_scatter", "png"),
        ]
    }
    profile_tables(comp, samples=sheet, **out)
    wide = pd.read_csv(out["wide"], sep="\t")
    assert len(wide) == 12 and "timepoint" in wide and "path" not in wide
    assert pd.read_csv(out["cross"], sep="\t")["sample_id"].nunique() == 6
    assert pd.read_csv(out["cross_panel"], sep="\t").empty  # one panel per modality here
    for k in ("scatter", "bars", "panel_scatter"):
        assert out[k].read_bytes()[:4] == b"\x89PNG"


def test_paired_contrast_and_too_few_samples(tmp_path):
    comp, sheet = _write(tmp_path)
    res = profile_differential_abundance(
        comp, samples=sheet, table=tmp_path / "da.tsv", figure=tmp_path / "da.png", params=PAIRED
    )
    fine = res[res["level"] == "cell_type"].set_index(["modality", "cell_type"])
    assert (fine.xs("B cell", level="cell_type")["q_value"] < 0.05).all()
    assert (fine.xs("B cell", level="cell_type")["coef"] > 0).all()
    assert (res["paired_by"] == "patient").all() and (tmp_path / "da.png").exists()
    # one patient only: pairs < 2, a note and the figure, no crash
    (tmp_path / "one").mkdir()
    comp1, sheet1 = _write(tmp_path / "one", n_patients=1)
    res1 = profile_differential_abundance(
        comp1,
        samples=sheet1,
        table=tmp_path / "da1.tsv",
        figure=tmp_path / "da1.png",
        params=PAIRED,
    )
    assert res1["p_value"].isna().all() and res1["note"].str.contains("pairs by patient").all()
    assert (tmp_path / "da1.png").read_bytes()[:4] == b"\x89PNG"


def test_qc_status_rule_function(tmp_path):
    comp, _ = _write(tmp_path)
    rna = pd.DataFrame({"sample_id": ["P0_pre"], "n_cells_before": [4000], "n_cells_after": [3000]})
    rna.to_csv(tmp_path / "rna_qc.tsv", sep="\t", index=False)
    st = profile_qc_status(
        comp,
        out=tmp_path / "st.tsv",
        figure=tmp_path / "st.png",
        rna_qc=tmp_path / "rna_qc.tsv",
        params=step_params("profile_qc_status", min_cells=3500),
    )
    assert not st["passed"].iloc[0] and "3000 cells after QC (< 3500)" in st["reasons"].iloc[0]
    assert (tmp_path / "st.png").exists()


@pytest.mark.slow
def test_differential_state_and_expression_steps_write_tables_and_figures(tmp_path):
    """The two state steps from the tables they read (marker medians and composition; the
    pseudobulk counts), with the planted effects of the tl tests found through them."""
    import anndata as ad

    from immunoprofiler.params import DifferentialExpression, DifferentialState
    from immunoprofiler.pipeline import (
        profile_differential_expression,
        profile_differential_state,
    )
    from tests.unit.test_tl_expression import UP, _pseudobulk
    from tests.unit.test_tl_state import _cohort

    contrast = Contrast(column="timepoint", groups=("pre", "post"), paired_by="patient")
    medians, cells, meta = _cohort()
    medians.to_csv(tmp_path / "medians.tsv", sep="\t", index=False)
    cells.to_csv(tmp_path / "composition.tsv", sep="\t", index=False)
    sheet = meta.reset_index().assign(modality="cytof")
    out = {k: tmp_path / f"ds_{k}.{e}" for k, e in (("table", "tsv"), ("heatmap", "png"))}
    res = profile_differential_state(
        tmp_path / "medians.tsv",
        tmp_path / "composition.tsv",
        samples=sheet,
        volcano=tmp_path / "volcano.png",
        params=DifferentialState(contrast=contrast, min_cells=10, marker_classes=("state",)),
        **out,
    )
    assert tuple(res.iloc[0][["cell_type", "marker"]]) == ("B cell", "pS6")
    assert pd.read_csv(out["table"], sep="\t").shape == res.shape
    for png in (out["heatmap"], tmp_path / "volcano.png"):
        assert png.read_bytes()[:4] == b"\x89PNG"

    pb, meta = _pseudobulk()
    pb.write_h5ad(tmp_path / "pb.h5ad")
    sheet = meta.reset_index().rename(columns={"condition": "timepoint"})
    sheet["timepoint"] = sheet["timepoint"].map({"ctrl": "pre", "stim": "post"})
    de = profile_differential_expression(
        tmp_path / "pb.h5ad",
        samples=sheet.assign(modality="rna"),
        table=tmp_path / "de.tsv",
        design=tmp_path / "de_samples.tsv",
        figure=tmp_path / "de.png",
        params=DifferentialExpression(contrast=contrast, min_cells=10),
    )
    cd8 = de[(de["cell_type"] == "CD8 T") & (de["q_value"] < 0.05)]
    assert set(UP) <= set(cd8["gene"])
    used = pd.read_csv(tmp_path / "de_samples.tsv", sep="\t")
    assert len(used) == ad.read_h5ad(tmp_path / "pb.h5ad").n_obs  # every type × sample listed
    assert (tmp_path / "de.png").read_bytes()[:4] == b"\x89PNG"
