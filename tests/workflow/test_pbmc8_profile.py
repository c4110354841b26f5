"""The cohort layer and the report on real CyTOF data: Bodenmiller's PBMC8 (4 patients, reference
vs BCR-XL stimulated, one barcoded run), contrast Ref → BCR-XL paired by patient."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.conftest import shared

from .conftest import run_snakemake

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pbmc8_run(tmp_path_factory):
    folder = shared("cytof_bodenmiller2012_pbmc8_patients1-4")
    table = pd.read_csv(folder / "sample_table_bodenmiller_2012.csv")
    work = tmp_path_factory.mktemp("pbmc8_run")
    sheet = pd.DataFrame(
        {
            "sample_id": table["shortname"],
            "modality": "cytof",
            "path": [str(folder / f) for f in table["file_name"]],
            "batch": "run1",  # barcoded: all eight in one acquisition
            "patient": [f"patient{p}" for p in table["patient"]],
            "condition": table["condition"],
        }
    )
    sheet.to_csv(work / "samples.tsv", sep="\t", index=False)
    config = {
        "samples": str(work / "samples.tsv"),
        "cyto": {"normalize": {"method": "none"}},
        "profile": {
            "contrast": {"column": "condition", "groups": ["Ref", "BCRXL"], "paired_by": "patient"}
        },
    }
    run_snakemake(work, config=config)
    run_snakemake(work, "--report", str(work / "results/report.html"), config=config)
    return work


def test_tables_and_report_for_real_data(pbmc8_run):
    prof = pbmc8_run / "results/profile"
    wide = pd.read_csv(prof / "composition_wide.tsv", sep="\t")
    assert len(wide) == 8 and set(wide["condition"]) == {"Ref", "BCRXL"}
    types = sorted(pd.read_csv(prof / "composition.tsv", sep="\t")["cell_type"].unique())
    np.testing.assert_allclose(wide[types].sum(axis=1), 1.0, atol=1e-6)
    da = pd.read_csv(prof / "differential_abundance.tsv", sep="\t")
    fine = da[da["level"] == "cell_type"]
    assert (
        (fine["paired_by"] == "patient").all()
        and (fine["n_a"] == 4).all()
        and (fine["n_b"] == 4).all()
    )
    assert fine["p_value"].between(0, 1).all() and fine["q_value"].between(0, 1).all()
    assert {"CD4 T cell", "B cell", "NK cell"} <= set(fine["cell_type"])
    st = pd.read_csv(prof / "qc_status.tsv", sep="\t")
    assert len(st) == 8 and set(st.columns) >= {"passed", "reasons"}
    # cross-modality: one modality only, so the table is empty but present
    assert pd.read_csv(prof / "cross_modality.tsv", sep="\t").empty
    html = (pbmc8_run / "results/report.html").read_text(encoding="utf-8")
    for name in (
        "differential_abundance.png",
        "qc_status.tsv",
        "metacluster_heatmap.png",
        "provenance.tsv",
    ):
        assert name in html, name
