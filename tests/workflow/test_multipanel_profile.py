"""A cytometry cohort from several panels and instruments, on real files (one workflow run,
shared by the tests): Bodenmiller's PBMC8 (8 files, one panel; contrast Ref → BCR-XL paired by
patient), the same patients 1–2 stained "again" with a myeloid panel (a panel TSV keeping only
the myeloid type markers of the same files: one sample, two panels), two CytoNorm whole-blood
files (another study's panel, group named in the sheet), cytofkit's PBMC file (a third CyTOF
panel) and two flow files from a FACSAria and an LSR II (two instruments, two panels)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.conftest import shared

from .conftest import run_snakemake
from .test_dot_test_configs import planned_jobs

pytestmark = pytest.mark.slow

MYELOID = {  # PBMC8 channel → marker, class: a myeloid panel's view of the same events
    "CD45(In115)Dd": ("CD45", "type"),
    "CD33(Nd148)Dd": ("CD33", "type"),
    "CD123(Eu151)Dd": ("CD123", "type"),
    "CD14(Gd160)Dd": ("CD14", "type"),
    "HLA-DR(Yb174)Dd": ("HLA-DR", "type"),
    "pp38(Nd144)Dd": ("pp38", "state"),
    "pS6(Yb172)Dd": ("pS6", "state"),
}
GROUPS = {  # {group} of the cohort rules → (samples, panel group name)
    "cytof-panel1": 8,  # PBMC8, detected
    "cytof-myeloid": 4,  # named after its panel file
    "cytof-wholeblood": 2,  # named in the sheet
    "cytof-panel3": 1,  # cytofkit
    "flow-panel1": 1,  # FACSAria
    "flow-panel2": 1,  # LSR II
}


def _sheet(work):
    pbmc8 = shared("cytof_bodenmiller2012_pbmc8_patients1-4")
    gates = shared("cytof_cytonorm_gates_wholeblood_3batches")
    rows = []

    def row(sample_id, modality, path, batch, **extra):
        rows.append(
            {
                "sample_id": sample_id,
                "modality": modality,
                "path": str(path),
                "batch": batch,
                **extra,
            }
        )

    for p in (1, 2, 3, 4):
        for cond, name in (("Ref", "Reference"), ("BCRXL", "BCR-XL")):
            meta = {"patient": f"patient{p}", "condition": cond, "timepoint": cond}
            fcs = pbmc8 / f"PBMC8_30min_patient{p}_{name}.fcs"
            row(f"p{p}_{cond}", "cytof", fcs, "run1", **meta)  # barcoded: one acquisition
            if p <= 2:
                row(f"p{p}_{cond}_mye", "cytof", fcs, "run1", panel="myeloid.tsv", **meta)
    for b, pt in ((1, "PTLG021"), (2, "PTLG028")):
        row(
            pt,
            "cytof",
            gates / f"Gates_{pt}_Unstim_Control_1.fcs",
            f"plate{b}",
            patient=pt,
            panel_group="wholeblood",
        )
    row(
        "cytofkit",
        "cytof",
        shared("cytof_cytofkit_pbmc_stim_cd19neg") / "130515_C2_stim_CD19-.fcs",
        "ck",
    )
    row("aria", "flow", shared("flow_flowio_100715_human_pbmc_facsaria") / "100715.fcs", "aria")
    row(
        "lsrii",
        "flow",
        shared("flow_flowkit_pbmc_lsrii_ics_il10") / "test_comp_example.fcs",
        "lsrii",
    )
    sheet = pd.DataFrame(rows).fillna("")
    sheet.to_csv(work / "samples.tsv", sep="\t", index=False)
    (work / "myeloid.tsv").write_text(
        "channel\tmarker\tmarker_class\n"
        + "".join(f"{c}\t{m}\t{k}\n" for c, (m, k) in MYELOID.items())
    )
    return sheet


CONFIG = {
    "cyto": {"normalize": {"method": "none"}, "cluster": {"umap_events": 3000}},
    "profile": {
        "contrast": {"column": "condition", "groups": ["Ref", "BCRXL"], "paired_by": "patient"}
    },
}


@pytest.fixture(scope="module")
def panels_run(tmp_path_factory):
    sheets = tmp_path_factory.mktemp("panels_sheet")
    _sheet(sheets)
    work = tmp_path_factory.mktemp("panels_run")
    config = {**CONFIG, "samples": str(sheets / "samples.tsv")}
    run_snakemake(work, config=config)
    run_snakemake(work, "--report", str(work / "results/report.html"), config=config)
    return work


def test_each_panel_group_runs_its_own_chain(panels_run):
    comp = pd.read_csv(panels_run / "results/profile/composition.tsv", sep="\t")
    for group, n in GROUPS.items():
        assert (panels_run / f"results/cyto/{group}/annotated.h5ad").is_file(), group
        part = pd.read_csv(panels_run / f"results/cyto/{group}/composition.tsv", sep="\t")
        assert part["sample_id"].nunique() == n, group
        assert (part["panel_group"] == group.split("-", 1)[1]).all()
    sums = comp.groupby("sample_id")["fraction"].sum()
    assert len(sums) == sum(GROUPS.values()) and np.allclose(sums, 1.0)
    wide = pd.read_csv(panels_run / "results/profile/composition_wide.tsv", sep="\t")
    assert set(wide["panel_group"]) == {g.split("-", 1)[1] for g in GROUPS}


def test_a_myeloid_panel_reports_myeloid_subsets_and_non_myeloid(panels_run):
    comp = pd.read_csv(panels_run / "results/cyto/cytof-myeloid/composition.tsv", sep="\t")
    assert {"non-myeloid cell", "classical monocyte"} <= set(comp["cell_type"])
    assert not {"CD4 T cell", "CD8 T cell", "B cell", "NK cell"} & set(comp["cell_type"])
    nonmyeloid = comp[comp["cell_type"] == "non-myeloid cell"].set_index("sample_id")
    assert (nonmyeloid["fraction"] > 0.7).all()  # PBMC: mostly lymphocytes


def test_the_same_samples_agree_across_panels(panels_run):
    cross = pd.read_csv(panels_run / "results/profile/cross_panel.tsv", sep="\t")
    lin = cross[cross["level"] == "lineage"]
    assert set(lin["modality_a"]) == {"cytof:myeloid"} and set(lin["modality_b"]) == {
        "cytof:panel1"
    }
    assert set(lin["sample_id"]) == {f"patient{p}|{c}" for p in (1, 2) for c in ("Ref", "BCRXL")}
    assert {"monocyte", "dendritic cell"} <= set(lin["cell_type"])
    # the same events through two panels: lineage fractions within 2 percentage points
    assert (lin["fraction_a"] - lin["fraction_b"]).abs().max() < 0.02
    assert pd.read_csv(panels_run / "results/profile/cross_modality.tsv", sep="\t").empty


def test_differential_abundance_per_panel_group(panels_run):
    prof = panels_run / "results/profile"
    da = pd.read_csv(prof / "differential_abundance.tsv", sep="\t")
    assert set(da["modality"]) == {"cytof:panel1", "cytof:myeloid"}  # the groups with the contrast
    fine = da[(da["level"] == "cell_type") & (da["modality"] == "cytof:panel1")]
    assert (
        (fine["paired_by"] == "patient").all()
        and (fine["n_a"] == 4).all()
        and (fine["n_b"] == 4).all()
    )
    assert fine["p_value"].between(0, 1).all() and fine["q_value"].between(0, 1).all()
    assert {"CD4 T cell", "B cell", "NK cell"} <= set(fine["cell_type"])
    st = pd.read_csv(prof / "qc_status.tsv", sep="\t")
    assert len(st) == sum(GROUPS.values()) and set(st.columns) >= {"passed", "reasons"}
    html = (panels_run / "results/report.html").read_text(encoding="utf-8")
    for name in ("cross_panel.tsv", "differential_abundance.png", "metacluster_heatmap.png"):
        assert name in html, name
    assert "group on its own markers" in html  # the report states how panels were analysed


def test_bcr_crosslinking_changes_b_cell_signalling_not_b_cell_numbers(panels_run):
    """PBMC8 Reference → BCR-XL, paired by patient (Bodenmiller 2012): pS6 is the strongest
    B-cell state change (q < 0.01); the other B-cell readouts and their q-values are in the
    table (README)."""
    ds = pd.read_csv(panels_run / "results/profile/differential_state.tsv", sep="\t")
    assert set(ds["modality"]) == {"cytof:panel1", "cytof:myeloid"}
    b = ds[(ds["modality"] == "cytof:panel1") & (ds["cell_type"] == "B cell")]
    b = b.sort_values("p_value")
    assert b.iloc[0]["marker"] == "pS6" and b.iloc[0]["q_value"] < 0.01, b.head()
    assert b.iloc[0]["logFC"] > 0 and (b["n_a"] == 4).all() and (b["n_b"] == 4).all()
    assert set(b["marker_class"]) == {"state"}


def test_merging_panels_plans_one_group_per_modality(tmp_path):
    _sheet(tmp_path)
    config = {**CONFIG, "samples": str(tmp_path / "samples.tsv")}
    separate = planned_jobs(_dry_run(tmp_path / "a", config))
    assert separate["cyto_normalize"] == len(GROUPS)
    merged = {**config, "cyto": {**config["cyto"], "merge_panels": "shared"}}
    assert planned_jobs(_dry_run(tmp_path / "b", merged))["cyto_normalize"] == 2  # cytof, flow


def _dry_run(work, config):
    work.mkdir()
    proc = run_snakemake(work, "-n", config=config)
    return proc.stdout + proc.stderr
