"""10x FASTQ inputs: pairs found in bcl2fastq / BCL Convert folders or listed, and checked."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from immunoprofiler.io.fastq import (
    FastqError,
    ReadPair,
    check_gzip_stream,
    check_read_pairs,
    find_read_pairs,
    iter_records,
    parse_fastq_name,
    read_pairs_from_lists,
)


def _fastq(path: Path, n: int = 3, r1_len: int = 28) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wb") as fh:
        for i in range(n):
            fh.write(b"@r%d\n%s\n+\n%s\n" % (i, b"A" * r1_len, b"F" * r1_len))
    return path


def _library(folder: Path, name: str, number: int, lanes=("001",), reads=("R1", "R2", "I1")):
    for lane in lanes:
        for read in reads:
            _fastq(folder / f"{name}_S{number}_L{lane}_{read}_001.fastq.gz")


def test_names_of_both_conventions_are_parsed():
    assert parse_fastq_name("P1_pre_S3_L002_R1_001.fastq.gz") == {
        "name": "P1_pre",
        "number": "3",
        "lane": "002",
        "read": "R1",
        "chunk": "001",
    }
    # BCL Convert with lanes merged (--no-lane-splitting): no _L part
    assert parse_fastq_name("pbmc_S1_R2_001.fastq.gz")["lane"] == ""
    assert parse_fastq_name("pbmc_S1_L001_I1_001.fq.gz")["read"] == "I1"
    for name in ("pbmc_R1.fastq.gz", "pbmc_S1_L001_R1_001.fastq", "pbmc_S1_L1_R1_001.fastq.gz"):
        assert parse_fastq_name(name) is None, name


def test_lanes_and_runs_of_one_sample_are_merged_index_reads_ignored(tmp_path):
    _library(tmp_path, "P1", 1, lanes=("001", "002"))
    _library(tmp_path / "run2", "P1", 4, lanes=("001",))
    (tmp_path / "notes.txt").write_text("not a FASTQ")
    pairs = find_read_pairs(tmp_path, "P1")
    assert [(p.run, p.lane) for p in pairs] == [("", "L001"), ("", "L002"), ("run2", "L001")]
    for p in pairs:
        assert p.r1.name.replace("_R1_", "_R2_") == p.r2.name and p.r1.parent == p.r2.parent
    check_read_pairs(pairs, "P1")


def test_a_folder_of_several_libraries_keeps_the_sample_s_own(tmp_path):
    _library(tmp_path, "P1", 1)
    _library(tmp_path, "P2", 2)
    assert {p.r1.name for p in find_read_pairs(tmp_path, "P2")} == {"P2_S2_L001_R1_001.fastq.gz"}
    with pytest.raises(FastqError, match=r"sample P3: .*several libraries \(P1, P2\)"):
        find_read_pairs(tmp_path, "P3")


def test_a_missing_mate_names_the_file_and_the_mate_expected(tmp_path):
    _library(tmp_path, "P1", 1, lanes=("001", "002"))
    (tmp_path / "P1_S1_L002_R2_001.fastq.gz").unlink()
    with pytest.raises(FastqError, match=r"sample P1: .*P1_S1_L002_R1_001.fastq.gz has no R2 mate"):
        find_read_pairs(tmp_path, "P1")
    (tmp_path / "P1_S1_L001_R1_001.fastq.gz").unlink()
    with pytest.raises(FastqError, match=r"P1_S1_L001_R2_001.fastq.gz has no R1 mate"):
        find_read_pairs(tmp_path, "P1")


def test_a_folder_without_fastq_is_named(tmp_path):
    (tmp_path / "reads.fastq.gz").write_bytes(b"")
    with pytest.raises(FastqError, match=r"sample S: .* holds no 10x FASTQ files"):
        find_read_pairs(tmp_path, "S")


def test_listed_files_are_paired_by_position_and_counted(tmp_path):
    pairs = read_pairs_from_lists("a_R1.fq.gz, b_R1.fq.gz", "a_R2.fq.gz,b_R2.fq.gz", "S", tmp_path)
    assert pairs == [
        ReadPair(tmp_path / "a_R1.fq.gz", tmp_path / "a_R2.fq.gz"),
        ReadPair(tmp_path / "b_R1.fq.gz", tmp_path / "b_R2.fq.gz"),
    ]
    with pytest.raises(FastqError, match=r"sample S: fastq_1 lists 2 file.* and fastq_2 1"):
        read_pairs_from_lists("a.fq.gz,b.fq.gz", "c.fq.gz", "S")
    with pytest.raises(FastqError, match="fastq_1 lists 0"):
        read_pairs_from_lists("", "", "S")


def test_missing_empty_and_uncompressed_files_are_named(tmp_path):
    good = _fastq(tmp_path / "a_R1.fastq.gz")
    empty = tmp_path / "b_R2.fastq.gz"
    empty.write_bytes(b"")
    plain = tmp_path / "c_R2.fastq.gz"
    plain.write_bytes(b"@r\nACGT\n+\nFFFF\n")
    for mate, why in (
        (tmp_path / "none.fastq.gz", "file does not exist"),
        (empty, "file is empty"),
        (plain, "not gzip-compressed"),
    ):
        with pytest.raises(FastqError, match=f"sample S: {mate}: {why}"):
            check_read_pairs([ReadPair(good, mate)], "S")


def test_a_truncated_file_is_found_when_read(tmp_path):
    whole = _fastq(tmp_path / "a.fastq.gz", n=5_000)
    # a second gzip member, as BCL Convert writes, is read through
    with open(whole, "ab") as fh:
        fh.write(gzip.compress(b"@x\nACGT\n+\nFFFF\n"))
    size = check_gzip_stream(whole, "S")
    assert size == len(gzip.decompress(whole.read_bytes())) > _records_bytes(5_000)
    assert sum(1 for _ in iter_records(whole, "S")) == 5_001
    cut = tmp_path / "cut.fastq.gz"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(FastqError, match=rf"sample S: {cut}: truncated or corrupt gzip after"):
        check_gzip_stream(cut, "S")
    with pytest.raises(FastqError, match="truncated or corrupt gzip after"):
        list(iter_records(cut, "S"))


def _records_bytes(n: int) -> int:  # the first member's records, 28-base reads
    return sum(len(b"@r%d\n" % i) + 29 + 2 + 29 for i in range(n))


def test_records_are_checked_and_limited(tmp_path):
    reads = _fastq(tmp_path / "a.fastq.gz", n=10, r1_len=26)
    assert [len(s) for s, _ in iter_records(reads, "S", limit=4)] == [26] * 4
    bad = tmp_path / "bad.fastq.gz"
    bad.write_bytes(gzip.compress(b"@r1\nACGT\n+\nFFFF\nACGT\nACGT\n+\nFFFF\n"))
    with pytest.raises(FastqError, match=r"sample S: .*bad.fastq.gz: record 2 is not a FASTQ"):
        list(iter_records(bad, "S"))
