"""Shared fixtures: real data from ../shared/data (skipped with a reason when absent), demo data.

The suite runs on pytest-xdist workers (``-n auto`` in pyproject.toml). Each worker gets an
equal share of the CPUs (:data:`CPUS`): thread pools (torch, BLAS, numba) are sized to it and
workflow tests run Snakemake with ``--cores CPUS``, so two workers on two cores never
oversubscribe (torch with 2 threads while another process holds a core trains ~9x slower).
Tests sharing a costly fixture run on one worker (:func:`pytest_itemcollected`)."""

from __future__ import annotations

import dataclasses
import os
import shutil
from functools import cache
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
MARKERS = ROOT / "resources" / "rna_cell_types.tsv"
CONFIG_SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"

WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
CPUS = max(1, len(os.sched_getaffinity(0)) // WORKERS)  # this worker's share of the CPUs
if WORKERS > 1:  # before torch, BLAS or numba start their thread pools
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ[var] = str(CPUS)
# one numba cache for the whole suite (its workers, workflows and their jobs): umap-learn and
# pynndescent are compiled once (tl.embedding.umap_learn), not in every clustering process
os.environ.setdefault("NUMBA_CACHE_DIR", str(ROOT / ".snakemake" / "numba_cache"))

# tests that share a costly module- or session-scoped fixture run on one worker
SHARED_RUNS = ("demo_run",)


def pytest_itemcollected(item):
    """Group tests for the workers: those using a shared workflow run (:data:`SHARED_RUNS`)
    together, every other module as one unit (its module-scoped fixtures are built once).
    Marked here, as each test is collected: xdist reads the marks in its own
    ``pytest_collection_modifyitems``, which runs before a conftest's."""
    shared_run = next((f for f in SHARED_RUNS if f in item.fixturenames), None)
    item.add_marker(pytest.mark.xdist_group(shared_run or item.module.__name__))


def pytest_collection_modifyitems(config, items):
    """Groups with slow tests first, so the longest units start early (otherwise in
    collection order: the sort is stable)."""
    groups = {}
    for item in items:
        groups.setdefault(item.get_closest_marker("xdist_group").args[0], []).append(item)

    def weight(group: str) -> tuple:
        slow = sum(t.get_closest_marker("slow") is not None for t in groups[group])
        return (group not in SHARED_RUNS, -slow)

    items[:] = [item for group in sorted(groups, key=weight) for item in groups[group]]


def default_config(**top) -> dict:
    """A config with every default filled in from the schema (as Snakemake does)."""
    from snakemake.utils import validate

    config = {"samples": "samples.tsv", **top}
    validate(config, str(CONFIG_SCHEMA))
    return config


@cache
def _default_params():
    from immunoprofiler.params import StepParams

    return StepParams.from_config(default_config())


def step_params(step: str, **overrides):
    """The parameters of ``step`` as a run with the schema's defaults gets them, with
    ``overrides`` (e.g. ``step_params("rna_integrate", method="harmony")``)."""
    return dataclasses.replace(getattr(_default_params(), step), **overrides)


def preprocess_params(**clean):
    """``cyto_preprocess``'s parameters with ``clean`` overrides (e.g. ``population=...``)."""
    p = step_params("cyto_preprocess")
    return dataclasses.replace(p, clean=dataclasses.replace(p.clean, **clean))


def shared(*parts: str) -> Path:
    """Path below ../shared/data, or skip the test when that folder is absent."""
    path = DATA.joinpath(*parts)
    if not DATA.is_dir():
        pytest.skip(f"real test data folder {DATA} is absent (expected beside the project)")
    if not path.exists():
        pytest.skip(f"{path} is absent from the shared data folder")
    return path


@pytest.fixture(scope="session")
def kang():
    """Kang 2018 ctrl and stim (paths)."""
    base = shared("scrna_10x_kang2018_pbmc_ifnb_ctrl_stim")
    return {"ctrl": base / "ctrl", "stim": base / "stim"}


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory):
    """The demo cohort written by the project's own simulator (small; no FASTQ: the reads are
    tested in tests/unit/test_quant.py and the demo workflow)."""
    from immunoprofiler.datasets import write_demo

    out = tmp_path_factory.mktemp("demo")
    write_demo(out, n_cells=900, seed=0, fastq=False)
    return out


@pytest.fixture(scope="session")
def demo_cohort(demo_dir, tmp_path_factory):
    """Demo samples ingested, QC'd and normalised: (cohort.h5ad, hvg.h5ad, truth)."""
    import pandas as pd

    from immunoprofiler import pipeline
    from immunoprofiler.datasets import DEMO_SAMPLES, demo_paths

    work = tmp_path_factory.mktemp("cohort")
    paths = demo_paths(demo_dir)
    qc_files = []
    for r in DEMO_SAMPLES.itertuples():
        ing = work / f"{r.sample_id}.ingest.h5ad"
        pipeline.rna_ingest(
            paths[r.sample_id],
            ing,
            sample_id=r.sample_id,
            metadata={"sample_id": r.sample_id, "batch": r.batch, "patient": r.patient},
            params=step_params("rna_ingest"),
        )
        out = work / f"{r.sample_id}.qc.h5ad"
        pipeline.rna_qc(
            ing,
            out,
            table=work / f"{r.sample_id}.tsv",
            plot=work / f"{r.sample_id}.png",
            sample_id=r.sample_id,
            params=step_params("rna_qc"),
        )
        qc_files.append(out)
    pipeline.rna_normalize(
        qc_files,
        work / "cohort.h5ad",
        out_hvg=work / "hvg.h5ad",
        params=step_params("rna_normalize"),
    )
    truth = pd.read_csv(demo_dir / "truth.tsv.gz", sep="\t")
    truth.index = truth["sample_id"] + "_" + truth["barcode"]
    return {"cohort": work / "cohort.h5ad", "hvg": work / "hvg.h5ad", "truth": truth, "work": work}


@pytest.fixture(scope="session")
def celltypist_model(demo_cohort, tmp_path_factory):
    """A CellTypist model file trained on the demo's first batch.

    A CellTypist model file is a pickle of ``{Model, Scaler_, description}``;
    ``celltypist.train`` itself is broken with scikit-learn >= 1.8 (``multi_class``), so the
    file is built the same way from scikit-learn directly.
    """
    import pickle

    import anndata as ad
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    ref = ad.read_h5ad(demo_cohort["cohort"])
    ref = ref[ref.obs["batch"] == "run1"].copy()
    labels = demo_cohort["truth"].loc[ref.obs_names, "true_cell_type"].to_numpy()
    X = ref.X.toarray()
    scaler = StandardScaler().fit(X)
    clf = LogisticRegression(max_iter=300).fit(scaler.transform(X), labels)
    clf.features = ref.var_names.to_numpy()
    desc = dict.fromkeys(("date", "url", "source", "version"), "")
    desc |= {"details": "demo", "number_celltypes": len(clf.classes_)}
    path = tmp_path_factory.mktemp("celltypist") / "demo.pkl"
    with open(path, "wb") as fh:
        pickle.dump({"Model": clf, "Scaler_": scaler, "description": desc}, fh)
    return path


TEST_CONFIGS = ROOT / ".test"


def make_workdir(work: Path, name: str) -> Path:
    """An empty working directory holding only ``.test/<name>`` as its ``config/`` folder
    (config.yaml, samples.tsv and any small inputs), as a new user's would."""
    shutil.copytree(TEST_CONFIGS / name, work / "config")
    return work


def dot_test_config(name: str) -> dict:
    """The configuration of ``.test/<name>``."""
    return yaml.safe_load((TEST_CONFIGS / name / "config.yaml").read_text())


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory):
    """The whole demo workflow (``.test/demo``) run locally (snakemake --cores CPUS) in an
    empty folder; the Snakefile picks up its config/config.yaml as it does a user's."""
    from tests.workflow.conftest import run_snakemake

    if os.environ.get("IMMUNOPROFILER_DEMO_RUN"):  # a finished run of the same demo (e.g. the
        return Path(os.environ["IMMUNOPROFILER_DEMO_RUN"])  # quick start's), read, not rerun
    work = make_workdir(tmp_path_factory.mktemp("demo_run"), "demo")
    run_snakemake(work)
    return work
