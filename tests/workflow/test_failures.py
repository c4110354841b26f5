"""Failure behaviour: a bad sheet stops before any job; one bad sample does not take down the
others under --keep-going; a GPU request without a GPU fails at once with a clear message."""

from __future__ import annotations

import anndata as ad
import pandas as pd
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


def test_sample_failing_qc_min_cells_is_excluded(tmp_path):
    from immunoprofiler.failures import read_record

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
    run_snakemake(
        tmp_path,
        "--until",
        "rna_qc_summary",
        config={"samples": str(sheet), "rna": {"qc": {"min_cells": 150}}},
    )
    for sample in ("good1", "good2"):  # the good samples are fully processed per sample
        assert read_record(tmp_path / f"results/rna/qc/{sample}.h5ad") is None
    failure = read_record(tmp_path / "results/rna/qc/tiny.h5ad")
    assert failure.step == "rna_qc" and "min_cells=150" in failure.reason
    assert "sample 'tiny': only" in (tmp_path / "logs/rna_qc/tiny.log").read_text()
    qc = pd.read_csv(tmp_path / "results/qc/rna_qc.tsv", sep="\t").set_index("sample_id")
    assert qc.loc["tiny", "status"] == "failed" and qc.loc["good1", "n_cells_after"] > 150


def test_three_broken_samples_are_excluded_and_seven_profiled(tmp_path):
    """.test/failing: 10 samples, 3 broken (unreadable, every cell removed by QC, no event
    passes cleaning): the run succeeds, the 7 others get the full cohort profile and the 3 are
    listed with step, file and cause (qc_status.tsv and the run's last message)."""
    work = make_workdir(tmp_path, "failing")
    proc = run_snakemake(work)
    out = proc.stdout + proc.stderr
    assert "3 sample(s) excluded from the cohort profile" in out
    comp = pd.read_csv(work / "results/profile/composition.tsv", sep="\t")
    good = {("rna", s) for s in ("P1_pre", "P2_pre", "P1_post")}
    good |= {("flow", s) for s in ("P1_pre", "P2_pre", "P1_post", "P2_post")}
    assert set(zip(comp["modality"], comp["sample_id"], strict=True)) == good
    status = pd.read_csv(work / "results/profile/qc_status.tsv", sep="\t").set_index(
        ["modality", "sample_id"]
    )
    excluded = status[status["excluded"]]
    assert set(excluded.index) == {("rna", "broken"), ("rna", "noqc"), ("flow", "saturated")}
    reasons = excluded["reasons"]
    assert "rna_ingest" in reasons["rna", "broken"] and "corrupt.h5" in reasons["rna", "broken"]
    assert "pass QC" in reasons["rna", "noqc"] and "rna_qc" in reasons["rna", "noqc"]
    assert "no event passes the gates" in reasons["flow", "saturated"]
    assert "saturated.fcs" in reasons["flow", "saturated"]
    for line in ("rna broken: excluded:", "rna noqc: excluded:", "flow saturated: excluded:"):
        assert line in out
    # the cohort files say whom they left out; the failed sample's own log names the file
    uns = ad.read_h5ad(work / "results/rna/annotated.h5ad", backed="r").uns
    assert set(uns["excluded_samples"]["sample_id"]) == {"broken", "noqc"}
    assert "corrupt.h5" in (work / "logs/rna_ingest/broken.log").read_text()
    pb = pd.read_csv(work / "results/profile/pseudobulk/rna_cells.tsv", sep="\t")
    assert set(pb["sample_id"]) == {"P1_pre", "P2_pre", "P1_post"}


def test_stop_on_sample_failure_fails_the_sample_jobs(tmp_path):
    """on_sample_failure: stop: the broken samples of .test/failing fail their own jobs
    (naming the file) while --keep-going processes a good one."""
    import shutil

    from tests.conftest import TEST_CONFIGS

    for f in ("corrupt.h5", "no_cells_pass_qc.h5ad", "saturated.fcs"):
        shutil.copy(TEST_CONFIGS / "failing" / f, tmp_path / f)
    good_sample(tmp_path / "good.h5", 0)
    sheet = tmp_path / "samples.tsv"
    sheet.write_text(
        "sample_id\tmodality\tpath\tbatch\n"
        "good\trna\tgood.h5\tb1\n"
        "broken\trna\tcorrupt.h5\tb1\n"
        "noqc\trna\tno_cells_pass_qc.h5ad\tb1\n"
        "saturated\tflow\tsaturated.fcs\tb1\n"
    )
    proc = run_snakemake(
        tmp_path,
        "--keep-going",
        "--until",
        "cyto_preprocess",
        "rna_qc",
        config={"samples": str(sheet), "on_sample_failure": "stop"},
        check=False,
    )
    assert proc.returncode != 0
    log = (tmp_path / "logs/rna_ingest/broken.log").read_text()
    assert "sample 'broken'" in log and "corrupt.h5" in log
    assert (
        "sample 'noqc': only 0 of 150 cells pass QC"
        in (tmp_path / "logs/rna_qc/noqc.log").read_text()
    )
    log = (tmp_path / "logs/cyto_preprocess/flow/saturated.log").read_text()
    assert "saturated.fcs" in log and "no event passes the gates" in log
    for out in ("rna/ingest/broken", "rna/qc/noqc", "cyto/flow/preprocess/saturated"):
        assert not (tmp_path / f"results/{out}.h5ad").exists(), out
    assert (tmp_path / "results/rna/qc/good.h5ad").exists()  # --keep-going: the good one ran


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
    run_snakemake(
        tmp_path,
        "--until",
        "rna_qc",
        "rna_bam_summary",
        config={
            "samples": str(sheet),
            "rna": {"bam_count": {"lower": 20}, "qc": {"min_cells": 50}},
        },
    )
    from immunoprofiler.failures import read_record

    assert (tmp_path / "results/rna/bam_counts/good/raw_feature_bc_matrix.h5").exists()
    assert read_record(tmp_path / "results/rna/qc/good.h5ad") is None
    log = (tmp_path / "logs/rna_bam_count/bad.log").read_text()
    assert "sample bad" in log and "bad.bam" in log
    # the bad BAM is excluded, and the steps after the counting pass its reason on
    failure = read_record(tmp_path / "results/rna/qc/bad.h5ad")
    assert failure.step == "rna_bam_count" and failure.file.endswith("bad.bam")
    summary = pd.read_csv(tmp_path / "results/qc/bam_counts.tsv", sep="\t").set_index("sample_id")
    assert summary.loc["bad", "status"] == "failed" and summary.loc["good", "cells"] > 0


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


def test_a_disk_filling_during_the_run_fails_the_job_clearly_and_loses_nothing(tmp_path):
    """The working directory on a 2 MiB tmpfs (root, as in CI; skipped otherwise): the file's
    preprocessed events (1.5 MB) fit, the cohort's normalised file does not: that job fails
    with "no space left on the device", naming the file; nothing partial is left and the
    finished file stays; with space again, the same command completes the run."""
    import os
    import subprocess

    from tests.conftest import shared

    fcs = shared("flow_flowkit_pbmc_lsrii_ics_il10") / "test_comp_example.fcs"
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    work = tmp_path / "small"
    work.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(work)]).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        sheet = tmp_path / "samples.tsv"
        sheet.write_text(f"sample_id\tmodality\tpath\tbatch\nlsrii\tflow\t{fcs}\tb1\n")
        args = ("--until", "cyto_normalize")
        proc = run_snakemake(work, *args, config={"samples": str(sheet)}, check=False)
        assert proc.returncode != 0
        out = proc.stdout + proc.stderr
        assert "results/cyto/flow/normalized.h5ad: no space left on the device" in out
        assert not list(work.rglob("*.partial"))
        kept = list((work / "results").rglob("*.h5ad"))
        assert kept == [work / "results/cyto/flow/preprocess/lsrii.h5ad"]  # kept, complete
        for f in kept:
            assert ad.read_h5ad(f, backed="r").n_obs > 0, f
        subprocess.run(["mount", "-o", "remount,size=64m", str(work)], check=True)
        run_snakemake(work, *args, config={"samples": str(sheet)})
        assert (work / "results/cyto/flow/normalized.h5ad").is_file()
    finally:
        subprocess.run(["umount", str(work)], check=False)


def _fastq_cohort(d):
    """Two good 10x .h5 samples and ``cut``: a FASTQ sample whose R2 is a truncated gzip, with
    the genome it would be counted against; returns the run's config."""
    from immunoprofiler.datasets.reads import simulated_whitelist, write_fastq, write_genome

    good_sample(d / "good1.h5", 0)
    good_sample(d / "good2.h5", 1)
    a = simulate_pbmc(40, seed=0, median_umis=500)
    genome = write_genome(list(a.var_names), d / "genome.fa", d / "genes.gtf")
    r1, r2 = d / "cut_S1_L001_R1_001.fastq.gz", d / "cut_S1_L001_R2_001.fastq.gz"
    write_fastq(a.X, simulated_whitelist(a.n_obs), genome, list(a.var["gene_ids"]), r1, r2)
    r2.write_bytes(r2.read_bytes()[:-2000])
    sheet = d / "samples.tsv"
    sheet.write_text(
        "sample_id\tmodality\tpath\tbatch\tfastq_1\tfastq_2\n"
        "good1\trna\tgood1.h5\tb1\t\t\n"
        "good2\trna\tgood2.h5\tb2\t\t\n"
        f"cut\trna\t\tb2\t{r1.name}\t{r2.name}\n"
    )
    reference = {"fasta": str(d / "genome.fa"), "gtf": str(d / "genes.gtf")}
    return {"samples": str(sheet), "rna": {"reference": reference}}


def test_a_truncated_fastq_sample_is_excluded_or_fails_alone(tmp_path):
    """A FASTQ sample with a truncated R2: with on_sample_failure: exclude its counting step
    records the failure (file and cause) and the other samples go on; with stop and
    --keep-going its own job fails naming the file, and the good samples still finish."""
    from immunoprofiler.failures import read_record

    config = _fastq_cohort(tmp_path)
    run_snakemake(tmp_path, "--until", "rna_qc", "rna_quantify_summary", config=config)
    failure = read_record(tmp_path / "results/rna/qc/cut.h5ad")
    assert failure.step == "rna_quantify" and "truncated or corrupt gzip" in failure.reason
    assert "cut_S1_L001_R2_001.fastq.gz" in failure.reason
    for sample in ("good1", "good2"):
        assert read_record(tmp_path / f"results/rna/qc/{sample}.h5ad") is None
    qc = pd.read_csv(tmp_path / "results/qc/starsolo.tsv", sep="\t").set_index("sample_id")
    assert qc.loc["cut", "status"] == "failed" and "truncated" in qc.loc["cut", "reason"]

    stop = tmp_path / "stop"
    stop.mkdir()
    index = tmp_path / "results/rna/reference/kallisto_gene"  # a prebuilt index, as config
    config = {**config, "on_sample_failure": "stop", "rna": {"reference": {"index": str(index)}}}
    proc = run_snakemake(stop, "--keep-going", "--until", "rna_qc", config=config, check=False)
    assert proc.returncode != 0
    log = (stop / "logs/rna_quantify/cut.log").read_text()
    assert "sample cut" in log and "cut_S1_L001_R2_001.fastq.gz" in log and "truncated" in log
    assert not (stop / "results/rna/fastq_counts/cut/filtered_feature_bc_matrix.h5").exists()
    assert not (stop / "results/rna/reference").exists()  # the configured index was used
    for sample in ("good1", "good2"):
        assert read_record(stop / f"results/rna/qc/{sample}.h5ad") is None


def test_starsolo_without_star_stops_before_any_job(tmp_path):
    """rna.quantifier: starsolo and no STAR on the PATH: the run stops at once, saying how to
    install it (module, conda, apt) or to use kallisto."""
    import os
    from pathlib import Path

    config = _fastq_cohort(tmp_path)
    config["rna"]["quantifier"] = "starsolo"
    dirs = []  # the PATH, a folder holding STAR replaced by links to all else in it
    for i, d in enumerate(os.environ["PATH"].split(os.pathsep)):
        if (Path(d) / "STAR").exists():
            shadow = tmp_path / f"path{i}"
            shadow.mkdir()
            for f in Path(d).iterdir():
                if not f.name.startswith("STAR"):
                    (shadow / f.name).symlink_to(f)
            d = str(shadow)
        dirs.append(d)
    env = {**os.environ, "PATH": os.pathsep.join(dirs)}
    proc = run_snakemake(tmp_path, config=config, check=False, env=env)
    assert proc.returncode != 0
    err = proc.stdout + proc.stderr
    assert "rna.quantifier is 'starsolo' but STAR is not on the PATH" in err
    for how in ("module load star", "conda install -c bioconda star", "apt-get install rna-star"):
        assert how in err
    assert not (tmp_path / "results").exists() and not (tmp_path / "logs").exists()
