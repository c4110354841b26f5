"""Failure behaviour: a bad sheet stops before any job; one bad sample does not take down the
others under --keep-going; a GPU request without a GPU fails at once with a clear message."""

from __future__ import annotations

import pytest

from immunoprofiler.datasets import simulate_pbmc
from immunoprofiler.io.tenx import write_10x_h5
from tests.conftest import make_workdir

from .conftest import run_snakemake

pytestmark = pytest.mark.slow


def good_sample(path, batch, n=700):
    write_10x_h5(simulate_pbmc(n, batch=batch, seed=0), path)


def test_bad_sheet_stops_before_any_job(tmp_path):
    (tmp_path / "ok.h5").write_bytes(b"")
    sheet = tmp_path / "samples.tsv"
    sheet.write_text(
        "sample_id\tmodality\tpath\tbatch\n"
        "A\trna\tok.h5\tb1\n"
        "A\trna\tok.h5\tb1\n"
        "B/1\trna\tmissing.h5\tb1\n"
    )
    proc = run_snakemake(tmp_path, config={"samples": str(sheet)}, check=False)
    assert proc.returncode != 0
    err = proc.stdout + proc.stderr
    assert "3 problem(s)" in err
    assert "not unique within modality 'rna'" in err
    assert "row 4 (sample_id 'B/1'), column 'sample_id'" in err
    assert "column 'path', value 'missing.h5': file or folder does not exist" in err
    assert not (tmp_path / "results").exists()


def test_sample_failing_qc_keeps_going(tmp_path):
    good_sample(tmp_path / "good1.h5", 0)
    good_sample(tmp_path / "good2.h5", 1)
    good_sample(tmp_path / "tiny.h5", 1, n=160)  # fewer than min_cells=150 pass QC
    sheet = tmp_path / "samples.tsv"
    sheet.write_text(
        "sample_id\tmodality\tpath\tbatch\n"
        "good1\trna\tgood1.h5\tb1\n"
        "good2\trna\tgood2.h5\tb2\n"
        "tiny\trna\ttiny.h5\tb2\n"
    )
    proc = run_snakemake(
        tmp_path,
        "--keep-going",
        "--until",
        "rna_qc",
        config={"samples": str(sheet), "rna": {"qc": {"min_cells": 150}}},
        check=False,
    )
    assert proc.returncode != 0
    for sample in ("good1", "good2"):  # the good samples are fully processed per sample
        assert (tmp_path / f"results/rna/qc/{sample}.h5ad").exists()
        assert (tmp_path / f"results/qc/rna/{sample}.tsv").exists()
    assert not (tmp_path / "results/rna/qc/tiny.h5ad").exists()
    tiny_log = (tmp_path / "logs/rna_qc/tiny.log").read_text()
    assert "sample 'tiny': only" in tiny_log and "min_cells=150" in tiny_log


def test_failing_config_keeps_the_good_samples(tmp_path):
    """.test/failing: a truncated FCS file and a corrupt 10x .h5 among good demo samples."""
    work = make_workdir(tmp_path, "failing")
    proc = run_snakemake(work, "--keep-going", "--until", "cyto_clean", "rna_qc", check=False)
    assert proc.returncode != 0
    log = (work / "logs/cyto_ingest/flow/cut.log").read_text()
    assert "truncated.fcs" in log
    assert "truncated" in log.lower() or "cannot be read as FCS" in log
    log = (work / "logs/rna_ingest/broken.log").read_text()
    assert "sample 'broken'" in log and "corrupt.h5" in log
    for s in ("P1_pre", "P2_pre", "P1_post"):
        assert (work / f"results/cyto/flow/clean/{s}.h5ad").exists()
        assert (work / f"results/qc/cyto/flow/{s}.tsv").exists()
        assert (work / f"results/rna/qc/{s}.h5ad").exists()
    assert not (work / "results/cyto/flow/ingest/cut.h5ad").exists()
    assert not (work / "results/rna/ingest/broken.h5ad").exists()


def test_gpu_requested_without_gpu_fails_fast(tmp_path):
    good_sample(tmp_path / "a.h5", 0, n=400)
    good_sample(tmp_path / "b.h5", 1, n=400)
    sheet = tmp_path / "samples.tsv"
    sheet.write_text("sample_id\tmodality\tpath\tbatch\na\trna\ta.h5\tb1\nb\trna\tb.h5\tb2\n")
    proc = run_snakemake(
        tmp_path,
        "--set-resources",
        "rna_integrate:gpu=1",
        "--until",
        "rna_integrate",
        config={"samples": str(sheet)},
        check=False,
    )
    assert proc.returncode != 0
    log = (tmp_path / "logs/rna_integrate/rna_integrate.log").read_text()
    assert "requested gpu=1 but torch sees no CUDA device" in log
    assert "Epoch" not in log  # nothing was trained
    assert not (tmp_path / "results/rna/integrated.h5ad").exists()


def test_cytovi_gpu_requested_without_gpu_fails_fast(tmp_path):
    from immunoprofiler.datasets.cytometry import simulate_cytometry, write_fcs

    rows = ["sample_id\tmodality\tpath\tbatch"]
    for i in range(2):
        X, names, desc, _, _ = simulate_cytometry(2000, modality="cytof", batch=i, seed=i)
        write_fcs(tmp_path / f"c{i}.fcs", X, names, desc)
        rows.append(f"c{i}\tcytof\tc{i}.fcs\tb{i}")
    sheet = tmp_path / "samples.tsv"
    sheet.write_text("\n".join(rows) + "\n")
    proc = run_snakemake(
        tmp_path,
        "--set-resources",
        "cyto_normalize:gpu=1",
        "--until",
        "cyto_normalize",
        config={"samples": str(sheet), "cyto": {"normalize": {"method": "cytovi"}}},
        check=False,
    )
    assert proc.returncode != 0
    log = (tmp_path / "logs/cyto_normalize/cytof.log").read_text()
    assert "requested gpu=1 but torch sees no CUDA device" in log
    assert "Epoch" not in log
    assert not (tmp_path / "results/cyto/cytof/normalized.h5ad").exists()


def test_bam_rows_are_counted_then_ingested_and_bad_bams_fail_clearly(tmp_path):
    from immunoprofiler.datasets.bam import write_synthetic_bam

    write_synthetic_bam(tmp_path / "good.bam", n_reads=200_000, n_cells=300, n_genes=400, seed=3)
    (tmp_path / "bad.bam").write_bytes(b"\x1f\x8b" + b"\0" * 100)  # gzip magic, not a BAM
    sheet = tmp_path / "samples.tsv"
    sheet.write_text(
        "sample_id\tmodality\tpath\tbatch\ngood\trna\tgood.bam\tb1\nbad\trna\tbad.bam\tb1\n"
    )
    proc = run_snakemake(
        tmp_path,
        "--keep-going",
        "--until",
        "rna_qc",
        "rna_bam_summary",
        config={
            "samples": str(sheet),
            "rna": {"bam_count": {"lower": 20}, "qc": {"min_cells": 50}},
        },
        check=False,
    )
    assert proc.returncode != 0  # the bad BAM
    assert (tmp_path / "results/rna/bam_counts/good/raw_feature_bc_matrix.h5").exists()
    assert (tmp_path / "results/rna/qc/good.h5ad").exists()
    log = (tmp_path / "logs/rna_bam_count/bad.log").read_text()
    assert "sample bad" in log and "bad.bam" in log


def test_contrast_naming_what_the_sheet_lacks_stops_before_any_job(tmp_path):
    good_sample(tmp_path / "a.h5", 0, n=300)
    sheet = tmp_path / "samples.tsv"
    sheet.write_text("sample_id\tmodality\tpath\tbatch\tarm\nA\trna\ta.h5\tb1\tx\n")
    contrast = {"column": "arm", "groups": ["x", "placebo"], "paired_by": "patient"}
    proc = run_snakemake(
        tmp_path,
        "-n",
        config={"samples": str(sheet), "profile": {"contrast": contrast}},
        check=False,
    )
    assert proc.returncode != 0
    err = proc.stdout + proc.stderr
    assert "paired_by 'patient' is not a sheet column" in err
    assert "group(s) ['placebo'] never appear in column 'arm'" in err


def test_config_typos_stop_before_any_job(tmp_path):
    good_sample(tmp_path / "a.h5", 0, n=300)
    sheet = tmp_path / "samples.tsv"
    sheet.write_text("sample_id\tmodality\tpath\tbatch\nA\trna\ta.h5\tb1\n")
    proc = run_snakemake(
        tmp_path,
        "-n",
        config={"samples": str(sheet), "sead": 1, "rna": {"integration": {"method": "harmony"}}},
        check=False,
    )
    assert proc.returncode != 0
    err = proc.stdout + proc.stderr
    assert "config key 'sead' is not known (did you mean 'seed'?)" in err
    assert "config key 'rna.integration' is not known (did you mean 'integrate'?)" in err
    assert not (tmp_path / "results").exists()
