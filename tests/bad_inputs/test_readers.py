"""Damaged inputs at the readers: each is refused with a message that names the file and the
cause (never read as data), files generated in the test from the project's simulator."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import anndata as ad
import h5py
import numpy as np
import pytest
import scipy.sparse as sp

from immunoprofiler.datasets import simulate_pbmc
from immunoprofiler.datasets.cytometry import simulate_cytometry, write_fcs
from immunoprofiler.io.fcs import FCSError, read_fcs
from immunoprofiler.io.tenx import InputFormatError, read_rna, write_10x_h5, write_10x_mtx


@pytest.fixture(scope="module")
def good_fcs(tmp_path_factory) -> Path:
    X, names, desc, _, spill = simulate_cytometry(2000, modality="flow", batch=0, seed=1)
    path = tmp_path_factory.mktemp("fcs") / "good.fcs"
    write_fcs(path, X, names, desc, spillover=spill)
    return path


def _offsets(b: bytes) -> tuple[int, int, int, int]:
    return int(b[10:18]), int(b[18:26]), int(b[26:34]), int(b[34:42])


def misalign(src: Path, dst: Path, shift: int) -> Path:
    """Move the DATA offsets (HEADER and TEXT alike, so no reader notices) by ``shift`` bytes."""
    b = bytearray(src.read_bytes())
    ts, te, ds, de = _offsets(b)
    b[26:34] = str(ds + shift).rjust(8).encode()
    b[34:42] = str(de + shift).rjust(8).encode()
    text = b[ts : te + 1].decode("latin-1")
    for key in ("BEGINDATA", "ENDDATA"):
        text = re.sub(rf"(\${key}.)(\d+)", lambda m: m[1] + str(int(m[2]) + shift), text)
    b[ts : te + 1] = text.encode("latin-1")
    dst.write_bytes(b)
    return dst


def fcs_with(tmp_path: Path, name: str, edit) -> Path:
    X, names, desc, _, spill = simulate_cytometry(1500, modality="flow", batch=0, seed=2)
    X = np.asarray(X, dtype=np.float32)
    X = edit(X)
    write_fcs(tmp_path / name, X, names, desc, spillover=spill)
    return tmp_path / name


@pytest.mark.parametrize("shift", [-1, -2, -3, -6])
def test_fcs_misaligned_data_offset_is_named(good_fcs, tmp_path, shift):
    bad = misalign(good_fcs, tmp_path / "shifted.fcs", shift)
    with pytest.raises(FCSError, match=r"shifted\.fcs: values implausible .*\(misaligned DATA"):
        read_fcs(bad, sample_id="s")


def test_fcs_non_finite_values_are_refused(tmp_path):
    def put_nan(X):
        X[5, 3], X[9, 4], X[11, 4] = np.nan, np.inf, -np.inf
        return X

    bad = fcs_with(tmp_path, "nan.fcs", put_nan)
    with pytest.raises(FCSError, match=r"nan\.fcs: 3 non-finite values \(NaN or ±inf\)"):
        read_fcs(bad, sample_id="s")

    # config cyto.ingest.non_finite: drop — those events (rows 5, 9, 11) left out and counted,
    # the others kept with their event numbers
    good = read_fcs(fcs_with(tmp_path, "good.fcs", lambda X: X), sample_id="s")
    kept = read_fcs(bad, sample_id="s", non_finite="drop")
    assert kept.uns["fcs"]["non_finite_dropped"] == 3
    assert kept.n_obs == good.n_obs - 3
    assert {"s_5", "s_9", "s_11"}.isdisjoint(kept.obs_names) and "s_10" in kept.obs_names
    assert {5, 9, 11}.isdisjoint(kept.obs["event"]) and 10 in set(kept.obs["event"])
    np.testing.assert_array_equal(kept.layers["raw"], good[kept.obs_names].layers["raw"])


def test_fcs_dropping_non_finite_events_keeps_the_garbage_check(good_fcs, tmp_path):
    """Dropping NaN events never hides a misread data segment, nor leaves an empty file."""
    bad = misalign(good_fcs, tmp_path / "shifted.fcs", -2)
    with pytest.raises(FCSError, match=r"shifted\.fcs: values implausible"):
        read_fcs(bad, sample_id="s", non_finite="drop")
    all_nan = fcs_with(tmp_path, "allnan.fcs", lambda X: np.where(X == X, np.nan, X)[:5])
    with pytest.raises(FCSError, match=r"allnan\.fcs: every event holds a non-finite value"):
        read_fcs(all_nan, sample_id="s", non_finite="drop")


def test_fcs_without_events(tmp_path):
    bad = fcs_with(tmp_path, "empty.fcs", lambda X: X[:0])
    with pytest.raises(FCSError, match=r"empty\.fcs: the file holds no events"):
        read_fcs(bad, sample_id="s")


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"", r"zero\.fcs: not an FCS file"),
        (b"sample_id,CD3\nA,1\n", r"zero\.fcs: not an FCS file"),
        (b"FCS3.1    garbage" + b"\0" * 40, r"zero\.fcs: cannot be read as FCS"),
    ],
)
def test_fcs_not_an_fcs(tmp_path, content, match):
    (tmp_path / "zero.fcs").write_bytes(content)
    with pytest.raises(FCSError, match=match):
        read_fcs(tmp_path / "zero.fcs", sample_id="s")


def test_fcs_truncated(good_fcs, tmp_path):
    b = good_fcs.read_bytes()
    (tmp_path / "cut.fcs").write_bytes(b[: len(b) // 2])
    with pytest.raises(FCSError, match=r"cut\.fcs: cannot be read as FCS"):
        read_fcs(tmp_path / "cut.fcs", sample_id="s")


def test_real_fcs_files_pass_the_value_checks():
    """Every FCS file of the shared data reads (the checks do not refuse real data)."""
    from tests.conftest import DATA, shared

    shared()  # skip with the reason when the shared data is absent
    files = sorted(DATA.glob("*/**/*.fcs"))
    assert len(files) >= 19
    for f in files:
        assert read_fcs(f, sample_id="s").n_obs > 0, f


# --- scRNA-seq counts --------------------------------------------------------------------


def _mex(folder: Path, n: int = 300) -> Path:
    write_10x_mtx(simulate_pbmc(n, batch=0, seed=1), folder)
    return folder


def _rewrite_gz(path: Path, text: str) -> None:
    with gzip.open(path, "wt") as fh:
        fh.write(text)


def test_mtx_declared_integer_holding_fractions(tmp_path):
    folder = _mex(tmp_path / "frac")
    mtx = folder / "matrix.mtx.gz"
    lines = gzip.open(mtx, "rt").read().splitlines()
    i = next(k for k, ln in enumerate(lines) if not ln.startswith("%")) + 1  # first entry
    r, c, _ = lines[i].split()
    lines[i] = f"{r} {c} 0.5"
    assert "integer" in lines[0]
    _rewrite_gz(mtx, "\n".join(lines) + "\n")
    with pytest.raises(InputFormatError, match="non-integer values"):
        read_rna(folder, sample_id="s")


def test_mtx_entries_do_not_match_the_header(tmp_path):
    folder = _mex(tmp_path / "short")
    mtx = folder / "matrix.mtx.gz"
    lines = gzip.open(mtx, "rt").read().splitlines()
    _rewrite_gz(mtx, "\n".join(lines[:-10]) + "\n")  # ten entries lost
    with pytest.raises(InputFormatError, match=r"matrix\.mtx\.gz: the header declares"):
        read_rna(folder, sample_id="s")


def test_mex_without_barcodes(tmp_path):
    folder = _mex(tmp_path / "nobc")
    _rewrite_gz(folder / "barcodes.tsv.gz", "")
    with pytest.raises(InputFormatError, match=r"barcodes\.tsv\.gz: holds no barcodes"):
        read_rna(folder, sample_id="s")


def test_mex_dimensions_mismatch(tmp_path):
    folder = _mex(tmp_path / "dims")
    bcs = gzip.open(folder / "barcodes.tsv.gz", "rt").read().splitlines()
    _rewrite_gz(folder / "barcodes.tsv.gz", "\n".join(bcs[:-5]) + "\n")
    with pytest.raises(InputFormatError, match="barcodes"):
        read_rna(folder, sample_id="s")


def test_mex_gz_that_is_not_gzip(tmp_path):
    folder = _mex(tmp_path / "notgz")
    data = gzip.open(folder / "matrix.mtx.gz").read()
    (folder / "matrix.mtx.gz").write_bytes(data)  # plain text under a .gz name
    with pytest.raises(InputFormatError, match=r"matrix\.mtx\.gz: not a readable MatrixMarket"):
        read_rna(folder, sample_id="s")


def test_h5_missing_a_dataset(tmp_path):
    path = tmp_path / "x.h5"
    write_10x_h5(simulate_pbmc(200, batch=0, seed=1), path)
    with h5py.File(path, "r+") as f:
        del f["matrix/indptr"]
    with pytest.raises(InputFormatError, match=r"x\.h5: not a readable 10x HDF5 file"):
        read_rna(path, sample_id="s")


@pytest.mark.parametrize("suffix", [".h5", ".h5ad"])
def test_zero_byte_files(tmp_path, suffix):
    path = tmp_path / f"empty{suffix}"
    path.write_bytes(b"")
    with pytest.raises(InputFormatError, match=rf"sample 's': .*empty\{suffix}: not a readable"):
        read_rna(path, sample_id="s")


@pytest.mark.parametrize(
    ("values", "match"), [(-1.0, "negative or non-integer"), (2.5, "negative or non-integer")]
)
def test_h5ad_counts_that_are_not_counts(tmp_path, values, match):
    a = simulate_pbmc(200, batch=0, seed=1)
    X = sp.csr_matrix(a.X, dtype=np.float32)
    X.data[0] = values
    ad.AnnData(X=X, obs=a.obs[[]], var=a.var[[]]).write_h5ad(tmp_path / "x.h5ad")
    with pytest.raises(InputFormatError, match=match):
        read_rna(tmp_path / "x.h5ad", sample_id="s")


def test_duplicate_barcodes(tmp_path):
    folder = _mex(tmp_path / "dup")
    bcs = gzip.open(folder / "barcodes.tsv.gz", "rt").read().splitlines()
    bcs[1] = bcs[0]
    _rewrite_gz(folder / "barcodes.tsv.gz", "\n".join(bcs) + "\n")
    with pytest.raises(InputFormatError, match="duplicated barcodes"):
        read_rna(folder, sample_id="s")


def test_fcs_tot_disagrees_with_the_data(good_fcs, tmp_path):
    b = bytearray(good_fcs.read_bytes())
    ts, te, _, _ = _offsets(b)
    text = b[ts : te + 1].decode("latin-1")
    text = re.sub(r"(\$TOT.)(\d+)", lambda m: m[1] + str(int(m[2]) + 7).rjust(len(m[2])), text)
    b[ts : te + 1] = text.encode("latin-1")
    (tmp_path / "tot.fcs").write_bytes(b)
    with pytest.raises(FCSError, match=r"tot\.fcs: "):
        read_fcs(tmp_path / "tot.fcs", sample_id="s")


def test_antibody_capture_only(tmp_path):
    a = simulate_pbmc(200, batch=0, seed=1)
    a.var["feature_types"] = "Antibody Capture"
    write_10x_h5(a, tmp_path / "adt.h5")
    with pytest.raises(InputFormatError, match=r"adt\.h5 has no Gene Expression features"):
        read_rna(tmp_path / "adt.h5", sample_id="s")


def test_no_cells(tmp_path):
    a = simulate_pbmc(200, batch=0, seed=1)
    write_10x_h5(a[:0], tmp_path / "none.h5")
    with pytest.raises(InputFormatError, match=r"none\.h5 holds no cells"):
        read_rna(tmp_path / "none.h5", sample_id="s")


def test_bam_truncated_and_without_tags(tmp_path):
    import pysam

    from immunoprofiler.datasets.bam import write_synthetic_bam
    from immunoprofiler.io.bam import BamError, count_bam

    bam = tmp_path / "x.bam"
    write_synthetic_bam(bam, n_reads=20_000, n_cells=50, n_genes=100, seed=1)
    data = bam.read_bytes()
    (tmp_path / "cut.bam").write_bytes(data[: len(data) // 2])
    with pytest.raises(BamError, match=r"cut\.bam: .*truncated"):
        count_bam(tmp_path / "cut.bam")
    header = {"HD": {"VN": "1.6"}, "SQ": [{"SN": "chr1", "LN": 1000}]}
    with pysam.AlignmentFile(tmp_path / "untagged.bam", "wb", header=header) as out:
        for i in range(10):
            r = pysam.AlignedSegment()
            r.query_name, r.query_sequence, r.flag = f"r{i}", "ACGT" * 10, 0
            r.reference_id, r.reference_start, r.mapping_quality = 0, 10 * i, 255
            r.cigar = [(0, 40)]
            out.write(r)
    with pytest.raises(BamError, match=r"untagged\.bam: no read has all of the configured tags"):
        count_bam(tmp_path / "untagged.bam")
