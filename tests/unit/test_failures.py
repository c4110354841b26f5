"""Failed samples: a per-sample step that meets bad data writes failure records (exclude) or
fails (stop); later steps pass the record on; cohort steps leave the sample out."""

from __future__ import annotations

import pandas as pd
import pytest

from immunoprofiler.failures import (
    Failure,
    SampleError,
    excluded_table,
    per_sample,
    read_record,
    split_failed,
    write_record,
)

CALLS: list[str] = []


@per_sample("toy_step", inputs=("inp",), outputs=("out", "table", "plot", "raw"), modality="rna")
def toy_step(inp, out, *, table, plot, raw, sample_id, fail=None):
    CALLS.append(sample_id)
    if fail is not None:
        raise fail
    import anndata as ad

    ad.AnnData().write_h5ad(out)
    return "ran"


def _outputs(tmp_path):
    return {
        "out": tmp_path / "o.h5ad",
        "table": tmp_path / "o.tsv",
        "plot": tmp_path / "o.png",
        "raw": tmp_path / "o.h5",
    }


def test_exclude_writes_a_record_in_every_output_format(tmp_path):
    outs = _outputs(tmp_path)
    err = SampleError("sample S1 (s1.fcs): no event passes the gates")
    assert toy_step("in.h5ad", **outs, sample_id="S1", fail=err, on_failure="exclude") is None
    expected = Failure("S1", "rna", "toy_step", "in.h5ad", str(err))
    assert read_record(outs["out"]) == expected == read_record(outs["raw"])
    row = pd.read_csv(outs["table"], sep="\t").iloc[0]
    assert row["status"] == "failed" and row["reason"] == str(err) and row["step"] == "toy_step"
    assert outs["plot"].read_bytes()[:4] == b"\x89PNG"


def test_stop_raises_and_other_errors_always_raise(tmp_path):
    outs = _outputs(tmp_path)
    with pytest.raises(SampleError, match="bad data"):
        toy_step("in.h5ad", **outs, sample_id="S1", fail=SampleError("bad data"))
    assert not outs["out"].exists()
    with pytest.raises(KeyError):  # a bug is not a sample's failure: never excluded
        toy_step("in.h5ad", **outs, sample_id="S1", fail=KeyError("x"), on_failure="exclude")
    assert not outs["out"].exists()


def test_a_record_among_the_inputs_is_passed_on_without_running(tmp_path):
    upstream = Failure("S2", "rna", "rna_ingest", "s2.h5", "cannot be read")
    write_record(tmp_path / "in.h5ad", upstream)
    outs = _outputs(tmp_path)
    CALLS.clear()
    assert toy_step(tmp_path / "in.h5ad", **outs, sample_id="S2", on_failure="stop") is None
    assert CALLS == []  # the step did not run
    assert read_record(outs["out"]) == upstream  # the first cause travels on
    assert toy_step(tmp_path / "real.h5ad", **outs, sample_id="S3") == "ran"
    assert read_record(outs["out"]) is None


def test_split_failed_and_the_excluded_table(tmp_path):
    import anndata as ad

    ad.AnnData().write_h5ad(tmp_path / "good.h5ad")
    bad = Failure("B", "flow", "cyto_clean", "b.fcs", "no event passes")
    write_record(tmp_path / "bad.h5ad", bad)
    good, failed = split_failed([tmp_path / "good.h5ad", tmp_path / "bad.h5ad"])
    assert good == [str(tmp_path / "good.h5ad")] and failed == [bad]
    table = excluded_table(failed)
    assert table.to_dict("records") == [
        {
            "sample_id": "B",
            "modality": "flow",
            "step": "cyto_clean",
            "file": "b.fcs",
            "reason": "no event passes",
        }
    ]
    assert list(excluded_table([]).columns) == list(table.columns)
    with pytest.raises(SampleError, match=r"every sample failed.*B: no event passes"):
        split_failed([tmp_path / "bad.h5ad"])
