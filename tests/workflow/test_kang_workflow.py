"""The whole RNA chain on real data: Kang 2018 PBMC ctrl and stim as two batches."""

from __future__ import annotations

import anndata as ad
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
    run_snakemake(work, config={"samples": str(sheet), "rna": {"integrate": {"max_epochs": 100}}})
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
