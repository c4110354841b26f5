"""profiles/slurm on a live single-node cluster: every job goes through Slurm, results equal a
local run, and GPU rules are routed to the GPU partition where they fail at once without a GPU."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from tests.conftest import ROOT
from tests.workflow.conftest import run_snakemake

from .conftest import sacct

pytestmark = pytest.mark.slow

PROFILES = (
    "--profile",
    str(ROOT / "profiles/slurm"),
    "--workflow-profile",
    str(ROOT / "tests/slurm/profile"),
)


def _flow_sheet(folder):
    from immunoprofiler.datasets.cytometry import simulate_cytometry, write_fcs

    rows = ["sample_id\tmodality\tpath\tbatch"]
    for i in range(4):
        X, names, desc, _, spill = simulate_cytometry(3000, modality="flow", batch=i % 2, seed=i)
        write_fcs(folder / f"f{i}.fcs", X, names, desc, spillover=spill)
        rows.append(f"f{i}\tflow\tf{i}.fcs\tb{i % 2}")
    sheet = folder / "samples.tsv"
    sheet.write_text("\n".join(rows) + "\n")
    return sheet


def _job_ids(workdir):
    logs = list((workdir / "logs/slurm").rglob("*.log"))
    return {p.stem for p in logs}, logs


def test_cytometry_chain_through_slurm_equals_local(slurm_cluster, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    sheet = _flow_sheet(data)
    remote, local = tmp_path / "slurm", tmp_path / "local"
    run_snakemake(remote, *PROFILES, config={"samples": str(sheet)}, timeout=900)
    run_snakemake(local, config={"samples": str(sheet)})
    ids, logs = _job_ids(remote)
    assert ids and all(i.isdigit() for i in ids)
    # the per-file steps ran grouped, the cohort steps one job each
    assert any("group_cyto_file" in str(p) for p in logs)
    rows = sacct(*ids)
    assert len(rows) == len(ids) and all(r["State"] == "COMPLETED" for r in rows), rows
    assert all(r["Partition"] == "cpu" and r["ReqMem"].endswith("M") for r in rows)
    for table in (
        "results/profile/composition.tsv",
        "results/qc/cyto_qc.tsv",
        "results/qc/cyto_batch.tsv",
    ):
        pd.testing.assert_frame_equal(
            pd.read_csv(remote / table, sep="\t"),
            pd.read_csv(local / table, sep="\t"),
            check_exact=False,
        )


def test_gpu_rule_goes_to_gpu_partition_and_fails_fast(slurm_cluster, tmp_path):
    from immunoprofiler.datasets import simulate_pbmc
    from immunoprofiler.datasets.writers import write_10x_h5

    for i in range(2):
        write_10x_h5(simulate_pbmc(500, batch=i, seed=i), tmp_path / f"r{i}.h5")
    sheet = tmp_path / "samples.tsv"
    sheet.write_text("sample_id\tmodality\tpath\tbatch\nr0\trna\tr0.h5\tb0\nr1\trna\tr1.h5\tb1\n")
    work = tmp_path / "run"
    proc = run_snakemake(
        work,
        *PROFILES,
        "--until",
        "rna_integrate",
        "--retries",
        "0",
        config={"samples": str(sheet), "rna": {"qc": {"min_cells": 50}}},
        check=False,
        timeout=900,
    )
    assert proc.returncode != 0
    log = (work / "logs/rna_integrate/rna_integrate.log").read_text()
    assert "requested gpu=1 but torch sees no CUDA device" in log
    assert "Epoch" not in log
    slurm_logs = list((work / "logs/slurm").rglob("*.log"))
    integrate = [p for p in slurm_logs if "rna_integrate" in str(p)]
    assert integrate, slurm_logs
    row = sacct(integrate[0].stem)[0]
    assert row["Partition"] == "gpu" and "gres/gpu=1" in row["AllocTRES"], row
    assert row["State"] == "FAILED"
    assert re.search(r"CUDA_VISIBLE_DEVICES", log)


def test_failed_job_is_reported_and_keep_going_finishes_the_others(slurm_cluster, tmp_path):
    sheet = _flow_sheet(tmp_path)
    good = (tmp_path / "f0.fcs").read_bytes()
    (tmp_path / "cut.fcs").write_bytes(good[: len(good) // 3])
    sheet.write_text(sheet.read_text() + "cut\tflow\tcut.fcs\tb1\n")
    work = tmp_path / "run"
    proc = run_snakemake(
        work,
        *PROFILES,
        "--until",
        "cyto_clean",
        "--retries",
        "0",
        config={"samples": str(sheet)},
        check=False,
        timeout=900,
    )
    assert proc.returncode != 0  # the truncated file failed …
    for s in ("f0", "f1", "f2", "f3"):  # … and --keep-going (in the profile) finished the others
        assert (work / f"results/cyto/flow/clean/{s}.h5ad").exists(), s
    assert "cut.fcs" in (work / "logs/cyto_ingest/flow/cut.log").read_text()
    ids, _ = _job_ids(work)
    states = {r["State"] for r in sacct(*ids)}
    assert "FAILED" in states and "COMPLETED" in states, states
