"""10x chemistry: detected from R1 lengths and whitelists, or a configured one checked."""

from __future__ import annotations

import numpy as np
import pytest

from immunoprofiler.io.chemistry import CHEMISTRIES, ChemistryError, detect_chemistry


def _barcodes(n: int, seed: int) -> list[bytes]:
    rng = np.random.default_rng(seed)
    return ["".join(rng.choice(list("ACGT"), 16)).encode() for _ in range(n)]


CODES = {  # each kit's barcodes (2,000 of them)
    name: _barcodes(2_000, i)
    for i, name in enumerate(("737K-august-2016", "3M-february-2018", "3M-3pgex-may-2023"))
}


@pytest.fixture(scope="module")
def whitelists(tmp_path_factory):
    """The whitelists as files: plain, and gzip with a second column (as 10x's v3 list)."""
    import gzip

    d = tmp_path_factory.mktemp("whitelists")
    out = {}
    for i, (name, codes) in enumerate(CODES.items()):
        if i % 2:
            out[name] = d / f"{name}.txt.gz"
            out[name].write_bytes(gzip.compress(b"".join(c + b"\tTTTT\n" for c in codes)))
        else:
            out[name] = d / f"{name}.txt"
            out[name].write_bytes(b"\n".join(codes) + b"\n")
    return out


def _reads(whitelist, umi: int, n: int = 1_000, r1_length: int = 28, errors: float = 0.1):
    """R1 reads: a barcode of ``whitelist`` (a fraction ``errors`` not in it), UMI, polyT."""
    rng = np.random.default_rng(3)
    pool, other = sorted(whitelist), _barcodes(n, 9)  # whitelist: a kit's barcodes
    reads = []
    for i in range(n):
        bc = other[i] if rng.random() < errors else pool[rng.integers(len(pool))]
        read = bc + b"ACGTACGTACGTAC"[:umi]
        reads.append((read + b"T" * r1_length)[:r1_length])
    return reads


@pytest.mark.parametrize(
    ("truth", "wl", "umi", "length"),
    [
        ("10xv2", "737K-august-2016", 10, 26),
        ("10xv2", "737K-august-2016", 10, 28),  # a v2 library read with 28 cycles
        ("10xv3", "3M-february-2018", 12, 28),
        ("10xv4", "3M-3pgex-may-2023", 12, 28),
    ],
)
def test_chemistry_is_detected_from_the_whitelist(whitelists, truth, wl, umi, length):
    chem, evidence = detect_chemistry(
        _reads(CODES[wl], umi, r1_length=length), whitelists, sample="S"
    )
    assert chem == CHEMISTRIES[truth]
    assert evidence["chosen_by"] == "whitelist" and evidence["r1_min_length"] == length
    assert 0.85 < evidence["whitelist_fraction"][wl] <= 0.95
    assert all(f < 0.05 for k, f in evidence["whitelist_fraction"].items() if k != wl)


def test_a_v3_run_is_not_taken_for_v2_when_r1_is_too_short_for_v3(whitelists):
    reads = _reads(CODES["3M-february-2018"], 12, r1_length=26)
    with pytest.raises(ChemistryError, match=r"sample S: the reads' barcodes are not those"):
        detect_chemistry(reads, whitelists, sample="S")


def test_r1_shorter_than_barcode_and_umi_says_so(whitelists):
    reads = _reads(CODES["737K-august-2016"], 10, r1_length=20)
    with pytest.raises(ChemistryError, match=r"sample S: R1 reads are 20 bases.*R1 and R2 swapped"):
        detect_chemistry(reads, whitelists, sample="S")


def test_a_configured_chemistry_is_checked_against_the_reads(whitelists):
    v3 = _reads(CODES["3M-february-2018"], 12)
    chem, evidence = detect_chemistry(v3, whitelists, sample="S", configured="10xv3")
    assert chem.name == "10xv3" and evidence["chosen_by"] == "configured, checked"
    with pytest.raises(ChemistryError, match="not those of the configured chemistry"):
        detect_chemistry(v3, whitelists, sample="S", configured="10xv2")
    # 5′: named, its whitelist (the 3′ v2 one) checked
    five = _reads(CODES["737K-august-2016"], 10, r1_length=26)
    assert detect_chemistry(five, whitelists, sample="S", configured="10x5v2")[0].strand == (
        "reverse"
    )
    # no whitelist given: the configured chemistry is taken, and the evidence says so
    chem, evidence = detect_chemistry(v3, {}, sample="S", configured="10xv3")
    assert chem.name == "10xv3" and evidence["chosen_by"].startswith("configured (no whitelist")
    with pytest.raises(ChemistryError, match="unknown chemistry 'v9'"):
        detect_chemistry(v3, whitelists, sample="S", configured="v9")


def test_auto_without_whitelists_asks_for_them():
    with pytest.raises(ChemistryError, match="needs the barcode whitelists"):
        detect_chemistry([b"A" * 28], {}, sample="S")
    with pytest.raises(ChemistryError, match="R1 holds no reads"):
        detect_chemistry([], {}, sample="S")


def test_whitelists_are_read_plain_or_gzipped(whitelists, tmp_path):
    from immunoprofiler.io.chemistry import whitelist_array

    for name, path in whitelists.items():  # plain, gzip with a second column
        assert whitelist_array(path).tolist() == CODES[name]
    (tmp_path / "crlf.txt").write_bytes(b"".join(c + b"\r\n" for c in CODES["3M-february-2018"]))
    assert whitelist_array(tmp_path / "crlf.txt").tolist() == CODES["3M-february-2018"]
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"ACGT\nACGTA\n")
    with pytest.raises(ValueError, match=r"barcodes of \[4, 5\] bases, expected 16"):
        whitelist_array(bad)
    (tmp_path / "empty.txt").write_bytes(b"\n")
    with pytest.raises(ValueError, match="is empty"):
        whitelist_array(tmp_path / "empty.txt")


def test_candidate_whitelists_follow_the_config(tmp_path):
    from immunoprofiler.io.chemistry import CHEMISTRIES, candidate_whitelists, packaged_whitelist

    auto = candidate_whitelists("auto", "kit")
    assert set(auto) == {"737K-august-2016", "3M-february-2018", "3M-3pgex-may-2023"}
    assert all(p.is_file() for p in auto.values())  # on disk with kb-python: not downloaded
    assert candidate_whitelists("10x5v2", "kit") == {
        "737K-august-2016": packaged_whitelist(CHEMISTRIES["10x5v2"])
    }
    assert candidate_whitelists("10xv3", "none") == {}
    mine = tmp_path / "wl.txt"
    assert candidate_whitelists("10xv3", "kit", mine) == {"3M-february-2018": mine}
    assert candidate_whitelists("10xv2", str(mine)) == {"737K-august-2016": mine}
    with pytest.raises(ValueError, match=r"'auto' needs rna\.whitelist 'kit'"):
        candidate_whitelists("auto", str(mine))
