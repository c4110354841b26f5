"""BAM counting: every count checked against an independent count of the same reads, and
every read rule checked on a BAM written here with known records."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pysam
import pytest

from immunoprofiler.io.bam import BamCountParams, BamError, count_bam, count_matrix
from tests.conftest import shared

REAL = ["cr12-v1.bam", "cr12.bam"]


def independent_count(path, min_mapq=255):
    """Straightforward reference: string keys, sets of UMIs, tags read with get_tags()."""
    umis = defaultdict(set)
    no_cb = no_ub = 0
    for r in pysam.AlignmentFile(str(path), "rb", check_sq=False).fetch(until_eof=True):
        if r.is_unmapped or r.is_secondary or r.is_supplementary or r.mapping_quality < min_mapq:
            continue
        tags = dict(r.get_tags())
        if "CB" not in tags:
            no_cb += 1
            continue
        if "UB" not in tags:
            no_ub += 1
            continue
        gx = tags.get("GX")
        if gx is None or ";" in gx:
            continue
        umis[(tags["CB"], gx)].add(tags["UB"])
    return {k: len(v) for k, v in umis.items()}, no_cb, no_ub


@pytest.mark.parametrize("name", REAL)
def test_real_cellranger_bam_counts_equal_an_independent_count(name):
    path = shared("bam_10x_cellranger1.2_cb_ub_gx_gn", name)
    counts = count_bam(path)
    X = count_matrix(counts).tocoo()
    ours = {
        (counts.barcodes[i], counts.gene_ids[j]): int(v)
        for i, j, v in zip(X.row, X.col, X.data, strict=True)
    }
    ref, no_cb, no_ub = independent_count(path)
    assert ours == ref
    assert counts.summary["reads_no_cell"] == no_cb
    assert counts.summary["reads_no_umi"] == no_ub
    s = counts.summary
    categories = [k for k in s if k not in ("reads_total",)]
    assert sum(s[k] for k in categories) == s["reads_total"]  # every read in exactly one category


def test_real_bam_gene_names_and_v1_chemistry():
    counts = count_bam(shared("bam_10x_cellranger1.2_cb_ub_gx_gn", "cr12-v1.bam"))
    assert all(g.startswith("ENSG") for g in counts.gene_ids)
    assert "MT-ND2" in counts.gene_names
    assert len(counts.barcodes[0]) == len("TACGATCTGCTGAT-1")  # 14-bp GemCode barcodes


def _bam(path, records, header_sq=("chr1",)):
    header = {
        "HD": {"VN": "1.4", "SO": "unsorted"},
        "SQ": [{"SN": s, "LN": 10_000} for s in header_sq],
    }
    with pysam.AlignmentFile(str(path), "wb", header=header) as out:
        for i, (flag, mapq, tags) in enumerate(records):
            a = pysam.AlignedSegment()
            a.query_name = f"q{i}"
            a.query_sequence = "ACGT" * 5
            a.query_qualities = pysam.qualitystring_to_array("F" * 20)
            a.flag = flag
            a.reference_id = -1 if flag & 4 else 0
            a.reference_start = -1 if flag & 4 else 100
            if not flag & 4:
                a.cigarstring = "20M"
            a.mapping_quality = mapq
            a.set_tags(list(tags.items()))
            out.write(a)
    return path


def rec(cb="AAAC-1", ub="AAAA", gx="G1", flag=0, mapq=255, **extra):
    tags = {}
    if cb:
        tags["CB"] = cb
    if ub:
        tags["UB"] = ub
    if gx:
        tags["GX"] = gx
        tags["GN"] = {"G1": "CD3E", "G2": "MS4A1"}.get(gx, gx)
    tags.update(extra)
    return (flag, mapq, tags)


@pytest.fixture
def known_bam(tmp_path):
    records = [
        rec(),
        rec(),
        rec(),  # 3 reads, one molecule
        rec(ub="AAAT"),  # 1 mismatch from AAAA, 1 read → absorbed by directional
        rec(ub="CCCC"),
        rec(ub="CCCC", flag=1024),  # second read duplicate-flagged
        rec(gx="G2", ub="GGGG"),
        rec(gx="G1;G2", ub="TTTT"),  # multi-gene
        rec(mapq=3, ub="TTTA"),  # low MAPQ
        rec(flag=4, ub="TTTC"),  # unmapped
        rec(flag=256, ub="TTTG"),  # secondary
        rec(flag=2048, ub="TTCA"),  # supplementary
        rec(cb=None, ub="GGGA", CR="AAAC"),  # no CB, raw barcode present
        rec(ub=None, UR="GGGC"),  # no UB, raw UMI present
        rec(ub="ANAA"),  # N in the UMI
        rec(gx=None),  # intergenic
        rec(cb="TTTG-1", ub="ACGT"),
    ]
    return _bam(tmp_path / "known.bam", records)


def test_every_rule_on_a_known_bam(known_bam):
    c = count_bam(known_bam)
    s = c.summary
    assert s == {
        "reads_total": 17,
        "reads_unmapped": 1,
        "reads_secondary": 2,
        "reads_duplicate": 0,
        "reads_low_mapq": 1,
        "reads_no_cell": 1,
        "reads_no_umi": 1,
        "reads_invalid_umi": 1,
        "reads_no_gene": 1,
        "reads_multi_gene": 1,
        "reads_counted": 8,
    }
    X = count_matrix(c).toarray()
    cell, g1, g2 = c.barcodes.index("AAAC-1"), c.gene_ids.index("G1"), c.gene_ids.index("G2")
    assert X[cell, g1] == 3  # AAAA, AAAT, CCCC (the duplicate-flagged read is kept by default)
    assert X[cell, g2] == 1
    assert X[c.barcodes.index("TTTG-1"), g1] == 1
    assert X.sum() == 5
    assert c.gene_names[g1] == "CD3E"
    # directional: AAAT (1 read) is absorbed by AAAA (3 reads ≥ 2·1 − 1); CCCC (2 reads) is not
    assert count_matrix(c, umi_correction="directional").toarray()[cell, g1] == 2


def test_duplicates_fallback_tags_and_mapq_options(known_bam):
    c = count_bam(known_bam, BamCountParams(skip_duplicates=True))
    assert c.summary["reads_duplicate"] == 1 and c.summary["reads_counted"] == 7
    c = count_bam(known_bam, BamCountParams(cell_fallback_tag="CR", umi_fallback_tag="UR"))
    assert c.summary["reads_no_cell"] == 0 and c.summary["reads_no_umi"] == 0
    assert "AAAC" in c.barcodes  # the uncorrected barcode, as configured
    assert count_matrix(c).sum() == 7
    c = count_bam(known_bam, BamCountParams(min_mapq=0))
    assert c.summary["reads_low_mapq"] == 0 and count_matrix(c).sum() == 6


def test_dropseq_gene_tag(tmp_path):
    path = _bam(tmp_path / "ds.bam", [rec(gx=None, GE="ACTB"), rec(gx=None, ub="CCCC", GE="ACTB")])
    c = count_bam(path)
    assert c.gene_ids == ["ACTB"] and count_matrix(c).sum() == 2


def test_bad_files_fail_with_clear_messages(tmp_path, known_bam):
    data = known_bam.read_bytes()
    real = shared("bam_10x_cellranger1.2_cb_ub_gx_gn", "cr12-v1.bam").read_bytes()
    cut = tmp_path / "cut.bam"
    cut.write_bytes(real[: len(real) // 2])
    with pytest.raises(BamError, match=r"cut\.bam: .*truncated"):
        count_bam(cut)
    txt = tmp_path / "reads.bam"
    txt.write_text("@SQ\tSN:chr1\n")
    with pytest.raises(BamError, match=r"reads\.bam: not a BAM file"):
        count_bam(txt)
    assert data  # the known BAM itself is fine
    untagged = _bam(tmp_path / "star.bam", [(0, 255, {"NH": 1, "XS": "+"}), (0, 255, {"NH": 1})])
    with pytest.raises(
        BamError,
        match=r"star\.bam: no read has all of the configured tags.*found on its reads: \['NH', 'XS'\]",
    ):
        count_bam(untagged)


def test_memory_is_bounded_by_distinct_triples(tmp_path):
    # a tiny reduction buffer forces many merges; the result must not change
    from immunoprofiler.datasets.bam import write_synthetic_bam

    path = tmp_path / "syn.bam"
    write_synthetic_bam(path, n_reads=30_000, n_cells=100, n_genes=200, seed=1)
    a = count_bam(path)
    b = count_bam(path, BamCountParams(buffer_reads=1000), threads=2)
    np.testing.assert_array_equal(a.keys, b.keys)
    np.testing.assert_array_equal(a.reads, b.reads)
    assert a.reads.sum() == a.summary["reads_counted"] and len(a.keys) < a.reads.sum()


def test_sort_order_does_not_matter(tmp_path):
    src = shared("bam_10x_cellranger1.2_cb_ub_gx_gn", "cr12-v1.bam")
    by_cell = tmp_path / "cellsorted.bam"
    by_name = tmp_path / "namesorted.bam"
    pysam.sort("-t", "CB", "-o", str(by_cell), str(src))
    pysam.sort("-n", "-o", str(by_name), str(src))
    ref = count_matrix(count_bam(src))
    for path in (by_cell, by_name):
        c = count_bam(path)
        X = count_matrix(c).tocoo()
        got = {
            (c.barcodes[i], c.gene_ids[j]): v for i, j, v in zip(X.row, X.col, X.data, strict=True)
        }
        r = count_bam(src)
        R = ref.tocoo()
        want = {
            (r.barcodes[i], r.gene_ids[j]): v for i, j, v in zip(R.row, R.col, R.data, strict=True)
        }
        assert got == want
