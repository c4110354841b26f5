"""Bad sample sheets and configs: refused before any job, each problem named (row, column,
value; or the config key), the good rows beside them not blamed."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from immunoprofiler.io.samples import SampleSheetError, read_sample_sheet
from immunoprofiler.params import unknown_keys
from tests.conftest import CONFIG_SCHEMA, ROOT, default_config

SCHEMA = yaml.safe_load((ROOT / "workflow/schemas/samples.schema.yaml").read_text())
HEADER = "sample_id\tmodality\tpath\tbatch\n"


def _sheet(tmp_path: Path, *rows: str, header: str = HEADER) -> Path:
    (tmp_path / "ok.h5").write_bytes(b"")
    (tmp_path / "ok.fcs").write_bytes(b"FCS3.1" + b" " * 60)
    (tmp_path / "mex").mkdir(exist_ok=True)
    (tmp_path / "empty_dir").mkdir(exist_ok=True)
    (tmp_path / "mex" / "matrix.mtx").write_text(
        "%%MatrixMarket matrix coordinate integer general\n"
    )
    p = tmp_path / "samples.tsv"
    p.write_text(header + "".join(r + "\n" for r in rows), encoding="utf-8")
    return p


GOOD = "good\trna\tok.h5\tb1"


@pytest.mark.parametrize(
    ("row", "column", "why"),
    [
        ("../etc\trna\tok.h5\tb1", "sample_id", "does not match"),
        ("a b\trna\tok.h5\tb1", "sample_id", "does not match"),
        ("a;rm -rf\trna\tok.h5\tb1", "sample_id", "does not match"),
        ("$(touch x)\trna\tok.h5\tb1", "sample_id", "does not match"),
        ("Probe_ü\trna\tok.h5\tb1", "sample_id", "does not match"),
        ("S1\tatac\tok.h5\tb1", "modality", "is not one of"),
        ("S1\trna\tmissing.h5\tb1", "path", "file or folder does not exist"),
        ("S1\trna\tempty_dir\tb1", "path", "folder holds no 10x matrix"),
        ("S1\tflow\tmex\tb1", "path", "needs an FCS file, not a folder"),
        ("S1\tcytof\tok.h5\tb1", "path", "not an FCS file"),
        ("S1\trna\tok.fcs\tb1", "path", "unsupported scRNA-seq input"),
        ("S1\trna\tok.h5\t", "batch", "is a required property"),
    ],
)
def test_bad_rows_are_named_and_good_rows_are_not(tmp_path, row, column, why):
    sheet = _sheet(tmp_path, GOOD, row)
    with pytest.raises(SampleSheetError) as err:
        read_sample_sheet(sheet, schema=SCHEMA)
    msg = str(err.value)
    assert "1 problem(s)" in msg, msg
    assert f"row 3 (sample_id '{row.split(chr(9))[0]}'), column '{column}'" in msg, msg
    assert why in msg, msg
    assert "row 2" not in msg  # the good row is not blamed


def test_duplicate_ids_and_missing_columns(tmp_path):
    sheet = _sheet(tmp_path, GOOD, GOOD)
    with pytest.raises(SampleSheetError, match=r"not unique within modality 'rna' \(rows 2, 3\)"):
        read_sample_sheet(sheet, schema=SCHEMA)
    sheet = _sheet(tmp_path, "good\trna\tok.h5", header="sample_id\tmodality\tpath\n")
    with pytest.raises(SampleSheetError, match=r"missing required column\(s\): batch"):
        read_sample_sheet(sheet, schema=SCHEMA)


def test_panel_on_an_rna_row_and_a_missing_panel(tmp_path):
    header = "sample_id\tmodality\tpath\tbatch\tpanel\n"
    sheet = _sheet(
        tmp_path, "r\trna\tok.h5\tb1\tp.tsv", "c\tcytof\tok.fcs\tb1\tnone.tsv", header=header
    )
    (tmp_path / "p.tsv").write_text("channel\tmarker\tmarker_class\n")
    with pytest.raises(SampleSheetError) as err:
        read_sample_sheet(sheet, schema=SCHEMA)
    assert "a panel is for cytometry rows only" in str(err.value)
    assert "panel file does not exist" in str(err.value)


@pytest.mark.parametrize(
    ("config", "match"),
    [
        ({"rna": {"qc": {"max_pct_mt": "twenty"}}}, "max_pct_mt"),  # wrong type
        ({"rna": {"qc": {"max_pct_mt": -5}}}, "max_pct_mt"),  # below its range
        ({"cyto": {"clean": {"bead_min": -100}}}, "bead_min"),  # the example
        ({"rna": {"integrate": {"method": "magic"}}}, "magic"),  # not one of the methods
        ({"profile": {"qc": {"min_fraction_retained": 1.5}}}, "min_fraction_retained"),
    ],
)
def test_bad_config_values_are_refused(config, match):
    from snakemake.exceptions import WorkflowError

    with pytest.raises(WorkflowError, match=match):
        default_config(**config)


def test_unknown_config_key_is_refused_with_a_suggestion():
    schema = yaml.safe_load(CONFIG_SCHEMA.read_text())
    assert unknown_keys({"cyto": {"normalise": {}}}, schema) == [
        "config key 'cyto.normalise' is not known (did you mean 'normalize'?)"
    ]


def test_panel_problems_are_found_with_the_sheet(tmp_path):
    """A panel naming a channel the FCS file lacks (or with a bad class) stops the run before
    any job: checked against the file's header."""
    from immunoprofiler.datasets.cytometry import simulate_cytometry, write_fcs

    X, names, desc, _, _ = simulate_cytometry(300, modality="cytof", seed=1)
    write_fcs(tmp_path / "c.fcs", X, names, desc)
    good = f"channel\tmarker\tmarker_class\n{names[5]}\t{desc[5]}\ttype\n"
    (tmp_path / "good.tsv").write_text(good)
    (tmp_path / "absent.tsv").write_text("channel\tmarker\tmarker_class\nXx999Di\tCD3\ttype\n")
    (tmp_path / "class.tsv").write_text(
        f"channel\tmarker\tmarker_class\n{names[5]}\tCD3\tlineage\n"
    )
    sheet = tmp_path / "samples.tsv"
    sheet.write_text(
        "sample_id\tmodality\tpath\tbatch\tpanel\n"
        "a\tcytof\tc.fcs\tb1\tgood.tsv\n"
        "b\tcytof\tc.fcs\tb1\tabsent.tsv\n"
        "c\tcytof\tc.fcs\tb1\tclass.tsv\n"
    )
    with pytest.raises(SampleSheetError) as err:
        read_sample_sheet(sheet, schema=SCHEMA)
    msg = str(err.value)
    assert "2 problem(s)" in msg
    assert "row 3 (sample_id 'b'), column 'panel'" in msg
    assert "channel(s) ['Xx999Di'] are not in the FCS file" in msg
    assert "row 4 (sample_id 'c'), column 'panel'" in msg and "marker_class must be" in msg


def test_a_panel_group_name_must_fit_in_a_path(tmp_path):
    header = "sample_id\tmodality\tpath\tbatch\tpanel_group\n"
    sheet = _sheet(
        tmp_path, "c1\tcytof\tok.fcs\tb1\tmy panel", "c2\tcytof\tok.fcs\tb1\tlin", header=header
    )
    with pytest.raises(SampleSheetError) as err:
        read_sample_sheet(sheet, schema=SCHEMA)
    msg = str(err.value)
    assert "1 problem(s)" in msg and "column 'panel_group', value 'my panel'" in msg, msg
