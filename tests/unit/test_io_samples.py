"""Sample-sheet validation: every problem reported at once, paths resolved against the sheet."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from immunoprofiler.io.samples import (
    SampleSheetError,
    add_metadata,
    check_contrast,
    is_reference,
    locate_sheet,
    metadata_table,
    read_sample_sheet,
    sample_metadata,
)
from tests.conftest import ROOT

SCHEMA = yaml.safe_load((ROOT / "workflow/schemas/samples.schema.yaml").read_text())


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "sheet.tsv"
    p.write_text(text)
    return p


def test_valid_sheet_resolves_relative_paths(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.h5").write_bytes(b"")
    sheet = write(
        tmp_path,
        "sample_id\tmodality\tpath\tbatch\tpatient\tresponse\nS1\trna\tdata/a.h5\tb1\tP1\tCR\n",
    )
    df = read_sample_sheet(sheet, schema=SCHEMA)
    assert Path(df.loc[0, "path"]).resolve() == (tmp_path / "data" / "a.h5").resolve()
    meta = sample_metadata(df, "S1", "rna")
    assert meta == {
        "sample_id": "S1",
        "modality": "rna",
        "batch": "b1",
        "patient": "P1",
        "response": "CR",
    }


def test_every_problem_is_listed_with_row_column_value(tmp_path):
    (tmp_path / "ok.h5").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("x")
    sheet = write(
        tmp_path,
        "sample_id\tmodality\tpath\tbatch\n"
        "S1\trna\tok.h5\tb1\n"
        "S1\trna\tok.h5\tb1\n"  # duplicate id
        "bad id\trna\tok.h5\tb1\n"  # unsafe id
        "S3\tatac\tok.h5\tb1\n"  # unknown modality
        "S4\trna\tmissing.h5\tb1\n"  # missing file
        "S5\trna\tok.h5\t\n"  # missing batch
        "S6\trna\tnotes.txt\tb2\n",  # unsupported format
    )
    with pytest.raises(SampleSheetError) as err:
        read_sample_sheet(sheet, schema=SCHEMA)
    msg = str(err.value)
    assert "6 problem(s)" in msg
    assert "column 'sample_id', value 'S1': not unique within modality 'rna' (rows 2, 3)" in msg
    assert "row 4 (sample_id 'bad id'), column 'sample_id'" in msg
    assert "row 5 (sample_id 'S3'), column 'modality', value 'atac'" in msg
    assert (
        "row 6 (sample_id 'S4'), column 'path', value 'missing.h5': file or folder does not exist"
        in msg
    )
    assert "row 7 (sample_id 'S5'), column 'batch'" in msg
    assert "row 8 (sample_id 'S6'), column 'path', value 'notes.txt': unsupported" in msg


def test_same_id_in_two_modalities_is_fine(tmp_path):
    (tmp_path / "a.h5").write_bytes(b"")
    (tmp_path / "a.fcs").write_bytes(b"FCS3.1    ")
    sheet = write(
        tmp_path, "sample_id\tmodality\tpath\tbatch\nS1\trna\ta.h5\tb\nS1\tcytof\ta.fcs\tb\n"
    )
    assert len(read_sample_sheet(sheet, schema=SCHEMA)) == 2


def test_cytometry_rows_need_fcs_files_and_existing_panels(tmp_path):
    from immunoprofiler.datasets.cytometry import simulate_cytometry, write_fcs

    X, names, desc, _, _ = simulate_cytometry(200, modality="cytof", seed=1)
    write_fcs(tmp_path / "a.fcs", X, names, desc)  # the panel is checked against its header
    (tmp_path / "b.fcs").write_text("not fcs")
    (tmp_path / "panels").mkdir()
    (tmp_path / "panels" / "p.tsv").write_text("channel\tmarker\tmarker_class\n")
    sheet = write(
        tmp_path,
        "sample_id\tmodality\tpath\tbatch\tpanel\n"
        "S1\tcytof\ta.fcs\tb\tpanels/p.tsv\n"
        "S2\tflow\ta.fcs\tb\t\n",
    )
    df = read_sample_sheet(sheet, schema=SCHEMA)
    assert df.loc[0, "panel"].endswith("panels/p.tsv") and df.loc[1, "panel"] == ""
    assert "panel" not in sample_metadata(df, "S1", "cytof")
    bad = write(
        tmp_path,
        "sample_id\tmodality\tpath\tbatch\tpanel\n"
        "S1\tcytof\tb.fcs\tb\t\n"
        "S2\tflow\ta.fcs\tb\tmissing.tsv\n",
    )
    with pytest.raises(SampleSheetError) as err:
        read_sample_sheet(bad, schema=SCHEMA)
    msg = str(err.value)
    assert "column 'path', value 'b.fcs': not an FCS file" in msg
    assert "column 'panel', value 'missing.tsv': panel file does not exist" in msg


def test_missing_columns_and_empty_sheet(tmp_path):
    with pytest.raises(SampleSheetError, match=r"missing required column.*batch"):
        read_sample_sheet(write(tmp_path, "sample_id\tmodality\tpath\nS1\trna\tx\n"), schema=SCHEMA)
    with pytest.raises(SampleSheetError, match="no rows"):
        read_sample_sheet(write(tmp_path, "sample_id\tmodality\tpath\tbatch\n"), schema=SCHEMA)
    with pytest.raises(SampleSheetError, match="does not exist"):
        read_sample_sheet(tmp_path / "nope.tsv", schema=SCHEMA)


def test_pending_paths_are_not_missing(tmp_path):
    sheet = write(tmp_path, "sample_id\tmodality\tpath\tbatch\nS1\trna\tdemo/S1.h5ad\tb\n")
    df = read_sample_sheet(sheet, schema=SCHEMA, pending=[str(tmp_path / "demo" / "S1.h5ad")])
    assert len(df) == 1


def test_folder_without_matrix_is_rejected(tmp_path):
    (tmp_path / "empty_dir").mkdir()
    sheet = write(tmp_path, "sample_id\tmodality\tpath\tbatch\nS1\trna\tempty_dir\tb\n")
    with pytest.raises(SampleSheetError, match="no 10x matrix"):
        read_sample_sheet(sheet, schema=SCHEMA)


def test_a_bam_that_is_not_bgzf_is_rejected(tmp_path):
    import gzip

    (tmp_path / "plain.bam").write_bytes(b"BAM\x01 not compressed")
    (tmp_path / "good.bam").write_bytes(gzip.compress(b"BAM\x01"))  # BGZF is gzip
    sheet = write(
        tmp_path,
        "sample_id\tmodality\tpath\tbatch\nS1\trna\tplain.bam\tb\nS2\trna\tgood.bam\tb\n",
    )
    with pytest.raises(SampleSheetError, match="1 problem") as err:
        read_sample_sheet(sheet, schema=SCHEMA)
    assert "S1" in str(err.value) and "not a BAM file (not BGZF-compressed)" in str(err.value)


def _contrast_sheet(tmp_path: Path) -> Path:
    for f in ("a.h5", "b.h5", "c.h5"):
        (tmp_path / f).write_bytes(b"")
    return write(
        tmp_path,
        "sample_id\tmodality\tpath\tbatch\tpatient\tarm\n"
        "A\trna\ta.h5\tb1\tP1\tdrug\n"
        "B\trna\tb.h5\tb1\tP2\tplacebo\n"
        "C\trna\tc.h5\tb2\tP3\tdrug\n",
    )


def test_contrast_is_checked_with_the_sheet(tmp_path):
    sheet = _contrast_sheet(tmp_path)
    ok = {"column": "arm", "groups": ["placebo", "drug"], "paired_by": "patient"}
    assert len(read_sample_sheet(sheet, schema=SCHEMA, contrast=ok)) == 3
    bad = {"column": "arm", "groups": ["placebo", "dose2"], "paired_by": "donor"}
    with pytest.raises(SampleSheetError) as err:
        read_sample_sheet(sheet, schema=SCHEMA, contrast=bad)
    msg = str(err.value)
    assert "paired_by 'donor' is not a sheet column" in msg
    assert "group(s) ['dose2'] never appear in column 'arm' (['drug', 'placebo'])" in msg


def test_check_contrast_cases():
    import pandas as pd

    sheet = pd.DataFrame({"sample_id": ["A", "B"], "response": ["R", "NR"]})
    check_contrast(sheet, None)  # no contrast: nothing to check
    check_contrast(sheet, {"column": "response", "groups": ["NR", "R"]})
    with pytest.raises(SampleSheetError, match="column 'arm' is not a sheet column"):
        check_contrast(sheet, {"column": "arm", "groups": ["x", "y"]})
    with pytest.raises(SampleSheetError, match="must differ"):
        check_contrast(sheet, {"column": "response", "groups": ["R", "R"]})
    with pytest.raises(SampleSheetError, match="covariate 'sex' is not a sheet column"):
        check_contrast(sheet, {"column": "response", "groups": ["NR", "R"], "covariates": ["sex"]})


def test_reference_values():
    assert [is_reference(v) for v in ("ref", " TRUE", "Yes", "1", "reference")] == [True] * 5
    assert [is_reference(v) for v in ("", "no", "0", "false", "sample")] == [False] * 5


def test_metadata_table_and_obs(tmp_path):
    import anndata as ad
    import numpy as np

    df = read_sample_sheet(_contrast_sheet(tmp_path), schema=SCHEMA)
    meta = metadata_table(df)
    assert list(meta.columns) == ["sample_id", "modality", "batch", "patient", "arm"]
    assert meta.to_dict("records")[1] == {
        "sample_id": "B",
        "modality": "rna",
        "batch": "b1",
        "patient": "P2",
        "arm": "placebo",
    }
    a = ad.AnnData(X=np.zeros((4, 1)))
    add_metadata(a, sample_metadata(df, "C", "rna"))
    assert list(a.obs.columns) == ["sample_id", "modality", "batch", "patient", "arm"]
    assert (a.obs["arm"] == "drug").all() and list(a.obs["arm"].cat.categories) == ["drug"]


def test_sheet_is_found_where_snakemake_was_started(tmp_path, monkeypatch):
    start, work = tmp_path / "start", tmp_path / "work"
    start.mkdir()
    work.mkdir()
    (start / "my.tsv").write_text("x")
    monkeypatch.chdir(work)  # snakemake --directory work, started in start/
    assert locate_sheet("my.tsv", start_dir=start) == (start / "my.tsv").resolve()
    (work / "my.tsv").write_text("y")  # a sheet in the working directory comes first
    assert locate_sheet("my.tsv", start_dir=start) == (work / "my.tsv").resolve()
    assert locate_sheet(start / "my.tsv", start_dir=None) == (start / "my.tsv").resolve()
    with pytest.raises(SampleSheetError) as err:
        locate_sheet("none.tsv", start_dir=start)
    assert str(err.value) == (
        f"sample sheet none.tsv: file does not exist (looked for {work / 'none.tsv'} or "
        f"{start / 'none.tsv'})"
    )


def _fastq(path: Path) -> None:
    import gzip

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(b"@r\nACGT\n+\nFFFF\n"))


def test_fastq_rows_from_a_folder_or_lists(tmp_path):
    """A FASTQ folder (lanes and runs merged, index reads ignored) or fastq_1 / fastq_2
    lists: the R1 and R2 files resolved, in order; the file columns are not metadata."""
    for run, lane in (("", "001"), ("", "002"), ("run2", "001")):
        for read in ("R1", "R2", "I1"):
            _fastq(tmp_path / "P1" / run / f"P1_S1_L{lane}_{read}_001.fastq.gz")
    _fastq(tmp_path / "x" / "a_R1.fq.gz")
    _fastq(tmp_path / "x" / "a_R2.fq.gz")
    _fastq(tmp_path / "x" / "b_R1.fq.gz")
    _fastq(tmp_path / "x" / "b_R2.fq.gz")
    sheet = write(
        tmp_path,
        "sample_id\tmodality\tpath\tbatch\tfastq_1\tfastq_2\n"
        "P1\trna\tP1\tb1\t\t\n"
        "P2\trna\t\tb1\tx/a_R1.fq.gz, x/b_R1.fq.gz\tx/a_R2.fq.gz,x/b_R2.fq.gz\n",
    )
    df = read_sample_sheet(sheet, schema=SCHEMA).set_index("sample_id")
    r1 = [Path(p).resolve() for p in df.loc["P1", "fastq_1"].split(",")]
    assert [p.relative_to(tmp_path.resolve()).as_posix() for p in r1] == [
        "P1/P1_S1_L001_R1_001.fastq.gz",
        "P1/P1_S1_L002_R1_001.fastq.gz",
        "P1/run2/P1_S1_L001_R1_001.fastq.gz",
    ]
    assert df.loc["P1", "fastq_2"] == df.loc["P1", "fastq_1"].replace("_R1_", "_R2_")
    assert [Path(p).name for p in df.loc["P2", "fastq_2"].split(",")] == [
        "a_R2.fq.gz",
        "b_R2.fq.gz",
    ]
    assert "fastq_1" not in metadata_table(df.reset_index()).columns


def test_unpaired_or_missing_fastq_files_are_sheet_errors(tmp_path):
    _fastq(tmp_path / "P1" / "P1_S1_L001_R1_001.fastq.gz")  # no R2
    _fastq(tmp_path / "a_R1.fq.gz")
    sheet = write(
        tmp_path,
        "sample_id\tmodality\tpath\tbatch\tfastq_1\tfastq_2\n"
        "P1\trna\tP1\tb1\t\t\n"
        "P2\trna\t\tb1\ta_R1.fq.gz,b_R1.fq.gz\ta_R2.fq.gz\n"
        "P3\trna\t\tb1\ta_R1.fq.gz\tgone_R2.fq.gz\n"
        "P4\trna\t\tb1\t\t\n"
        "C1\tcytof\tx.fcs\tb1\ta_R1.fq.gz\ta_R1.fq.gz\n",
    )
    with pytest.raises(SampleSheetError) as err:
        read_sample_sheet(sheet, schema=SCHEMA)
    msg = str(err.value)
    assert "sample P1: " in msg and "P1_S1_L001_R1_001.fastq.gz has no R2 mate" in msg
    assert "sample P2: fastq_1 lists 2 file(s) and fastq_2 1" in msg
    assert "sample P3: " in msg and "gone_R2.fq.gz: file does not exist" in msg
    assert "(sample_id 'P4'), column 'path', value '': required (or fastq_1 and fastq_2" in msg
    assert "(sample_id 'C1'), column 'fastq_1'" in msg and "FASTQ files are for RNA rows" in msg
