"""The damaged-input corpus through the workflow: each damaged file is one sample of one sheet,
beside a good RNA and a good flow sample. With ``on_sample_failure: exclude`` (the default)
every damaged sample fails its own first job with a message naming the sample, the file and the
cause (the failure record the cohort steps read; its log says it was excluded), and the good
samples complete. Refusals before any job (sheet and config problems) are tested in
test_sheet_and_config.py; each reader's message in test_readers.py."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from immunoprofiler.datasets import simulate_pbmc
from immunoprofiler.datasets.cytometry import simulate_cytometry, write_fcs
from immunoprofiler.failures import read_record
from immunoprofiler.io.tenx import write_10x_h5, write_10x_mtx
from tests.workflow.conftest import run_snakemake

from .test_readers import misalign

pytestmark = pytest.mark.slow


def _fcs(path: Path, edit=lambda X: X, seed: int = 2) -> Path:
    X, names, desc, _, spill = simulate_cytometry(1500, modality="flow", batch=0, seed=seed)
    write_fcs(path, edit(np.asarray(X, dtype=np.float32)), names, desc, spillover=spill)
    return path


def _mex(folder: Path, edit) -> Path:
    write_10x_mtx(simulate_pbmc(300, batch=0, seed=1), folder)
    name, text = edit(folder)
    with gzip.open(folder / name, "wt") as fh:
        fh.write(text)
    return folder


def _lines(folder: Path, name: str) -> list[str]:
    return gzip.open(folder / name, "rt").read().splitlines()


def _fraction(folder: Path):
    lines = _lines(folder, "matrix.mtx.gz")
    i = next(k for k, ln in enumerate(lines) if not ln.startswith("%")) + 1
    r, c, _ = lines[i].split()
    lines[i] = f"{r} {c} 0.5"
    return "matrix.mtx.gz", "\n".join(lines) + "\n"


def _h5(path: Path, edit=None, adata=None) -> Path:
    write_10x_h5(adata if adata is not None else simulate_pbmc(200, batch=0, seed=1), path)
    if edit:
        with h5py.File(path, "r+") as f:
            edit(f)
    return path


def _h5ad_counts(path: Path, value: float) -> Path:
    a = simulate_pbmc(200, batch=0, seed=1)
    X = sp.csr_matrix(a.X, dtype=np.float32)
    X.data[0] = value
    ad.AnnData(X=X, obs=a.obs[[]], var=a.var[[]]).write_h5ad(path)
    return path


def _adt_only(path: Path) -> Path:
    a = simulate_pbmc(200, batch=0, seed=1)
    a.var["feature_types"] = "Antibody Capture"
    return _h5(path, adata=a)


def _cut(path: Path, src: Path) -> Path:
    b = src.read_bytes()
    path.write_bytes(b[: len(b) // 2])
    return path


def _tot(path: Path, src: Path) -> Path:
    b = bytearray(src.read_bytes())
    ts, te = int(b[10:18]), int(b[18:26])
    text = b[ts : te + 1].decode("latin-1")
    text = re.sub(r"(\$TOT.)(\d+)", lambda m: m[1] + str(int(m[2]) + 7).rjust(len(m[2])), text)
    b[ts : te + 1] = text.encode("latin-1")
    path.write_bytes(b)
    return path


def _nan(X):
    X[5, 3], X[9, 4] = np.nan, np.inf
    return X


#: sample → (modality, how the file is made from the folder and a good FCS, the step that
#: fails it, what its message says)
CASES = {
    "fcs_truncated": (
        "flow",
        lambda d, g: _cut(d / "cut.fcs", g),
        "cyto_ingest",
        "cannot be read as FCS",
    ),
    "fcs_misaligned": (
        "flow",
        lambda d, g: misalign(g, d / "shift.fcs", -2),
        "cyto_ingest",
        "values implausible",
    ),
    "fcs_nan": (
        "flow",
        lambda d, g: _fcs(d / "nan.fcs", _nan),
        "cyto_ingest",
        "2 non-finite values",
    ),
    "fcs_no_events": (
        "flow",
        lambda d, g: _fcs(d / "empty.fcs", lambda X: X[:0]),
        "cyto_ingest",
        "holds no events",
    ),
    "fcs_tot": ("flow", lambda d, g: _tot(d / "tot.fcs", g), "cyto_ingest", "tot.fcs"),
    "fcs_garbage": (
        "flow",
        lambda d, g: (
            (d / "garb.fcs").write_bytes(b"FCS3.1    garbage" + b"\0" * 40) and d / "garb.fcs"
        ),
        "cyto_ingest",
        "cannot be read as FCS",
    ),
    "fcs_saturated": (
        "flow",
        lambda d, g: _fcs(d / "sat.fcs", _saturate),
        "cyto_clean",
        "no event passes the gates",
    ),
    "h5_missing_dataset": (
        "rna",
        lambda d, g: _h5(d / "nodata.h5", lambda f: f.__delitem__("matrix/indptr")),
        "rna_ingest",
        "not a readable 10x HDF5",
    ),
    "h5_truncated": (
        "rna",
        lambda d, g: _cut(d / "cut.h5", _h5(d / "whole.h5")),
        "rna_ingest",
        "cut.h5",
    ),
    "h5_no_cells": (
        "rna",
        lambda d, g: _h5(d / "none.h5", adata=simulate_pbmc(200, batch=0, seed=1)[:0]),
        "rna_ingest",
        "holds no cells",
    ),
    "h5_adt_only": (
        "rna",
        lambda d, g: _adt_only(d / "adt.h5"),
        "rna_ingest",
        "no Gene Expression features",
    ),
    "h5ad_zero_bytes": (
        "rna",
        lambda d, g: (d / "zero.h5ad").write_bytes(b"") or d / "zero.h5ad",
        "rna_ingest",
        "not a readable",
    ),
    "h5ad_negative": (
        "rna",
        lambda d, g: _h5ad_counts(d / "neg.h5ad", -1.0),
        "rna_ingest",
        "negative or non-integer",
    ),
    "h5ad_fractional": (
        "rna",
        lambda d, g: _h5ad_counts(d / "frac.h5ad", 2.5),
        "rna_ingest",
        "negative or non-integer",
    ),
    "mex_fractional": (
        "rna",
        lambda d, g: _mex(d / "mexfrac", _fraction),
        "rna_ingest",
        "non-integer values",
    ),
    "mex_no_barcodes": (
        "rna",
        lambda d, g: _mex(d / "nobc", lambda f: ("barcodes.tsv.gz", "")),
        "rna_ingest",
        "holds no barcodes",
    ),
    "mex_duplicate_barcodes": (
        "rna",
        lambda d, g: _mex(d / "dup", _duplicate),
        "rna_ingest",
        "duplicated barcodes",
    ),
}


def _saturate(X):
    X[:, 0] = X[:, 0].max() * 10  # forward scatter saturated on every event
    return X


def _duplicate(folder: Path):
    bcs = _lines(folder, "barcodes.tsv.gz")
    bcs[1] = bcs[0]
    return "barcodes.tsv.gz", "\n".join(bcs) + "\n"


@pytest.fixture(scope="module")
def corpus_run(tmp_path_factory):
    data = tmp_path_factory.mktemp("corpus_data")
    good_fcs = _fcs(data / "good.fcs", seed=1)
    write_10x_h5(simulate_pbmc(700, batch=0, seed=0), data / "good.h5")
    rows = [("good_rna", "rna", "good.h5"), ("good_flow", "flow", "good.fcs")]
    for sample, (modality, make, _, _) in CASES.items():
        rows.append((sample, modality, Path(make(data, good_fcs)).name))
    sheet = pd.DataFrame(rows, columns=["sample_id", "modality", "path"]).assign(batch="b1")
    sheet.to_csv(data / "samples.tsv", sep="\t", index=False)
    work = tmp_path_factory.mktemp("corpus_run")
    proc = run_snakemake(
        work, "--until", "cyto_preprocess", "rna_qc", config={"samples": str(data / "samples.tsv")}
    )
    return work, proc.stdout + proc.stderr


def _rule(modality: str, step: str) -> str:
    """The rule a failing stage runs in (a cytometry file's stages are one rule)."""
    return step if modality == "rna" else "cyto_preprocess"


def _output(work: Path, sample: str, modality: str, step: str) -> Path:
    if modality == "rna":
        return work / f"results/rna/{step.removeprefix('rna_')}/{sample}.h5ad"
    return work / f"results/cyto/{modality}/preprocess/{sample}.h5ad"


def test_every_damaged_sample_fails_alone_with_its_cause(corpus_run):
    work, _ = corpus_run
    outcomes = {}
    for sample, (modality, _, step, says) in CASES.items():
        failure = read_record(_output(work, sample, modality, step))
        assert failure is not None, f"{sample}: not excluded at {step}"
        assert failure.step == step, (sample, failure)
        assert failure.sample_id == sample and says in failure.reason, (sample, failure.reason)
        assert Path(failure.file).name in failure.reason, (sample, failure)
        log = (
            work
            / "logs"
            / _rule(modality, step)
            / (sample if modality == "rna" else f"{modality}/{sample}")
        )
        assert f"sample {sample} excluded" in log.with_suffix(".log").read_text(), sample
        outcomes[(modality, step)] = outcomes.get((modality, step), 0) + 1
    assert sum(outcomes.values()) == len(CASES) >= 17


def test_the_good_samples_beside_them_complete(corpus_run):
    work, _ = corpus_run
    assert read_record(work / "results/rna/qc/good_rna.h5ad") is None
    assert read_record(work / "results/cyto/flow/preprocess/good_flow.h5ad") is None
    assert ad.read_h5ad(work / "results/rna/qc/good_rna.h5ad", backed="r").n_obs > 100
