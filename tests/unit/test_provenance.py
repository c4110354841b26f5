"""Provenance records: versions, parameters, checksums; deterministic."""

from __future__ import annotations

import hashlib
import json

import anndata as ad

from immunoprofiler.provenance import merge, record, sha256sum


def test_record_and_checksums(tmp_path):
    f = tmp_path / "x.txt"
    f.write_bytes(b"hello")
    d = tmp_path / "dir"
    d.mkdir()
    (d / "a").write_bytes(b"1")
    (d / "b").write_bytes(b"2")
    assert sha256sum(f) == hashlib.sha256(b"hello").hexdigest()
    assert sha256sum(d) == sha256sum(d)
    a = ad.AnnData()
    record(a, "step:S1", params={"k": None, "v": [1, 2]}, inputs=[f, d])
    entry = a.uns["provenance"]["step:S1"]
    assert json.loads(entry["params"]) == {"k": None, "v": [1, 2]}
    assert entry["inputs"]["x.txt"] == hashlib.sha256(b"hello").hexdigest()
    assert entry["versions"]["scanpy"] != "not installed"
    assert "immunoprofiler" in entry["versions"]
    a.write_h5ad(tmp_path / "a.h5ad")  # survives the round trip
    b = ad.read_h5ad(tmp_path / "a.h5ad")
    assert b.uns["provenance"]["step:S1"]["params"] == entry["params"]
    assert set(merge([a.uns["provenance"], {"other": {}}])) == {"step:S1", "other"}
