"""The whole RNA chain on real data: Kang 2018 PBMC ctrl and stim as two batches, and the
interferon response in every major cell type's pseudobulk."""

from __future__ import annotations

import anndata as ad
import pandas as pd
import pytest

from tests.conftest import shared

from .conftest import run_snakemake

pytestmark = pytest.mark.slow


def test_kang_lineages_found(tmp_path):
    base = shared("scrna_10x_kang2018_pbmc_ifnb_ctrl_stim")
    sheet = tmp_path / "samples.tsv"  # outside the working directory, which starts empty
    work = tmp_path / "work"
    work.mkdir()
    sheet.write_text(
        "sample_id\tmodality\tpath\tbatch\tcondition\n"
        f"kang_ctrl\trna\t{base / 'ctrl'}\tctrl\tcontrol\n"
        f"kang_stim\trna\t{base / 'stim' / 'filtered_gene_bc_matrices' / 'hg19'}\tstim\tIFN-beta\n"
    )
    contrast = {"column": "condition", "groups": ["control", "IFN-beta"]}
    config = {
        "samples": str(sheet),
        "rna": {"integrate": {"max_epochs": 100}},
        "profile": {"contrast": contrast},
    }
    run_snakemake(work, config=config)
    assert sorted(p.name for p in work.iterdir() if not p.name.startswith(".")) == [
        "benchmarks",
        "logs",
        "results",
    ]
    obs = ad.read_h5ad(work / "results/rna/annotated.h5ad", backed="r").obs
    frac = (
        obs.groupby("sample_id", observed=True)["lineage"]
        .value_counts(normalize=True)
        .unstack(fill_value=0)
    )
    for sample in ("kang_ctrl", "kang_stim"):
        for lineage in ("T cell", "NK cell", "B cell", "monocyte"):
            assert frac.loc[sample, lineage] > 0.03, (sample, lineage, frac.loc[sample].to_dict())
    unknown = frac["unknown"] if "unknown" in frac else 0.0 * frac.iloc[:, 0]
    assert (unknown < 0.2).all(), unknown.to_dict()
    # IFN-beta: interferon-stimulated genes lead every major cell type's changes (one sample
    # per group: effect sizes only, no p-values)
    de = pd.read_csv(work / "results/profile/differential_expression.tsv", sep="\t")
    assert de["p_value"].isna().all() and de["note"].str.contains("effect sizes only").all()
    used = pd.read_csv(work / "results/profile/differential_expression_samples.tsv", sep="\t")
    n = used.pivot_table(index="cell_type", columns="sample_id", values="n_cells").fillna(0)
    major = n.index[(n >= 100).all(axis=1)]
    assert len(major) >= 4, n
    for cell_type in major:
        top = set(de[de["cell_type"] == cell_type].head(20)["gene"])
        assert len(top & ISGS) >= 3, (cell_type, sorted(top))


ISGS = {"ISG15", "IFI6", "IFIT1", "MX1", "IFIT3", "IFIT2", "ISG20", "IFI44L", "RSAD2", "OAS1"}
