"""Provenance as plain data: versions, parameters, checksums; deterministic; merged by cohort
steps; read back from .h5ad files without their matrices."""

from __future__ import annotations

import hashlib
import json

import anndata as ad
import numpy as np

from immunoprofiler.params import RnaCluster
from immunoprofiler.provenance import entry, merge, read, sha256sum


def test_checksums_of_files_and_folders(tmp_path):
    f = tmp_path / "x.txt"
    f.write_bytes(b"hello")
    d = tmp_path / "dir"
    d.mkdir()
    (d / "a").write_bytes(b"1")
    (d / "b").write_bytes(b"2")
    assert sha256sum(f) == hashlib.sha256(b"hello").hexdigest()
    # a folder: every file's relative name then its bytes, in sorted order
    assert sha256sum(d) == hashlib.sha256(b"a1b2").hexdigest()
    (d / "b").write_bytes(b"3")
    assert sha256sum(d) == hashlib.sha256(b"a1b3").hexdigest()


def test_entry_is_plain_json_able_data(tmp_path):
    f = tmp_path / "x.txt"
    f.write_bytes(b"hello")
    e = entry("step:S1", params={"k": None, "v": [1, 2], "n": np.int64(3)}, inputs=[f])
    assert set(e) == {"step:S1"}
    rec = e["step:S1"]
    assert json.loads(json.dumps(rec)) == rec  # nothing but JSON types
    assert json.loads(rec["params"]) == {"k": None, "n": 3, "v": [1, 2]}
    assert rec["inputs"] == {"x.txt": hashlib.sha256(b"hello").hexdigest()}
    assert rec["versions"]["scanpy"] != "not installed" and "immunoprofiler" in rec["versions"]
    assert entry("step:S1", params={"v": [1, 2], "k": None, "n": 3}, inputs=[f]) == e  # rerun
    # a parameter dataclass is recorded field by field
    p = RnaCluster(n_neighbors=15, resolution=1.0, umap_min_dist=0.5, umap_cells=50_000, seed=0)
    assert json.loads(entry("rna_cluster", params=p)["rna_cluster"]["params"]) == {
        "n_neighbors": 15,
        "resolution": 1.0,
        "seed": 0,
        "umap_cells": 50_000,
        "umap_min_dist": 0.5,
    }


def test_merge_and_read_back_from_h5ad(tmp_path):
    a = entry("ingest:S1", params={"x": 1})
    b = entry("ingest:S2")
    own = entry("normalize", params={"n": 2})
    merged = merge(a, None, b, own)
    assert list(merged) == ["ingest:S1", "ingest:S2", "normalize"]
    assert merge(a, entry("ingest:S1", params={"x": 2}))["ingest:S1"]["params"] == '{"x": 2}'
    adata = ad.AnnData(X=np.ones((3, 2), dtype=np.float32), uns={"provenance": merged})
    adata.write_h5ad(tmp_path / "a.h5ad")
    ad.AnnData(uns={"provenance": entry("other")}).write_h5ad(tmp_path / "b.h5ad")
    ad.AnnData().write_h5ad(tmp_path / "none.h5ad")
    back = read(tmp_path / "a.h5ad")
    assert back == merged  # survives the .h5ad round trip unchanged
    assert list(read(tmp_path / "a.h5ad", tmp_path / "b.h5ad", tmp_path / "none.h5ad")) == [
        "ingest:S1",
        "ingest:S2",
        "normalize",
        "other",
    ]


def test_environment_compared_with_the_lock_file(tmp_path):
    from importlib.metadata import version

    from immunoprofiler.provenance import environment_vs_lock, read_lock

    lock = tmp_path / "requirements.lock"
    lock.write_text(
        "# a comment\n"
        f"anndata=={version('anndata')} \\\n    --hash=sha256:abc\n"
        "numpy==0.0.1 \\\n    --hash=sha256:def\n    # via scanpy\n"
        "no_such_package==1.0\n"
    )
    assert read_lock(lock) == {
        "anndata": version("anndata"),
        "numpy": "0.0.1",
        "no-such-package": "1.0",
    }
    status = {r["package"]: r["status"] for r in environment_vs_lock(lock)}
    assert status == {"anndata": "same", "numpy": "different", "no-such-package": "not installed"}


def test_the_committed_lock_pins_every_declared_dependency():
    """The repository's lock file parses and pins every dependency pyproject declares."""
    import re
    import tomllib

    from immunoprofiler.provenance import read_lock
    from tests.conftest import ROOT

    pins = read_lock(ROOT / "requirements.lock")
    assert "torch" not in pins  # installed first, the CPU build (see tools/update-lock.sh)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = project["dependencies"] + project["optional-dependencies"]["test"]
    names = {re.split(r"[<>=\[ ;]", d, maxsplit=1)[0].lower().replace("_", "-") for d in wanted}
    # every declared dependency is locked: a change to pyproject needs tools/update-lock.sh
    assert names - {"torch"} <= set(pins), sorted(names - {"torch"} - set(pins))


def test_per_sample_entries_are_kept_once_in_a_cohort_chain(tmp_path):
    """The first cohort file holds its samples' entries as one table; a file derived from it
    names that file (relative to its own folder) and holds only the cohort steps' entries;
    read() of any file of the chain gives every entry."""
    import pytest

    from immunoprofiler import provenance as P

    samples = merge(*(entry(f"rna_qc:S{i}", params={"i": i}) for i in range(300)))
    first_uns = P.cohort_uns(merge(samples, entry("normalize")), out=tmp_path / "norm.h5ad")
    assert set(first_uns["provenance"]) == {"normalize"}
    assert len(first_uns[P.SAMPLES]) == 300
    assert P.from_table(P.table(samples)) == samples  # the table round-trips exactly
    ad.AnnData(uns=first_uns).write_h5ad(tmp_path / "norm.h5ad")
    (tmp_path / "later").mkdir()
    later = tmp_path / "later" / "clustered.h5ad"
    uns = P.updated(
        ad.read_h5ad(tmp_path / "norm.h5ad").uns,
        entry("cluster"),
        out=later,
        inputs=[tmp_path / "norm.h5ad"],
    )
    assert uns[P.SAMPLES_IN] == "../norm.h5ad" and P.SAMPLES not in uns
    assert set(uns["provenance"]) == {"normalize", "cluster"}
    ad.AnnData(uns=uns).write_h5ad(later)
    # a third file derived from the second names the first, not the second
    third = P.updated(uns, entry("annotate"), out=tmp_path / "ann.h5ad", inputs=[later])
    assert third[P.SAMPLES_IN] == "norm.h5ad"
    everything = read(later)
    assert set(everything) == set(samples) | {"normalize", "cluster"}
    assert everything["rna_qc:S7"] == samples["rna_qc:S7"]
    (tmp_path / "norm.h5ad").unlink()
    with pytest.raises(FileNotFoundError, match=r"norm\.h5ad"):
        read(later)
