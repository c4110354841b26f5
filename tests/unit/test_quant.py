"""FASTQ → counts: a simulated genome and reads with a known truth, counted by kallisto |
bustools and STARsolo; the reference checks; the chemistry found from the reads."""

from __future__ import annotations

import gzip
import os
import shutil

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from immunoprofiler.datasets import simulate_pbmc
from immunoprofiler.datasets.reads import simulated_whitelist, write_fastq, write_genome
from immunoprofiler.io.chemistry import CHEMISTRIES, ChemistryError
from immunoprofiler.io.fastq import FastqError, ReadPair, find_read_pairs
from immunoprofiler.io.reference import ReferenceError, check_reference, gtf_genes
from immunoprofiler.params import CellCalling, RnaQuantify

STAR = shutil.which("STAR") is not None
if not STAR and os.environ.get("IMMUNOPROFILER_REQUIRE_STAR"):  # CI: fail, never skip
    raise RuntimeError("IMMUNOPROFILER_REQUIRE_STAR is set but STAR is not on the PATH")
needs_star = pytest.mark.skipif(
    not STAR, reason="STAR is not on the PATH (.ci/run installs Debian's rna-star)"
)


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    """300 barcodes (cells, doublets, damaged and empty droplets) of the demo's simulator,
    ~600k read pairs over two lanes, 0.1 % sequencing errors, a 5,000-barcode whitelist."""
    d = tmp_path_factory.mktemp("reads")
    a = simulate_pbmc(300, seed=0, median_umis=1000)
    genome = write_genome(list(a.var_names), d / "genome.fa", d / "genes.gtf")
    wl = simulated_whitelist(5000)
    (d / "whitelist.txt").write_text("\n".join(wl) + "\n")
    rng = np.random.default_rng(1)
    bcs = [wl[i] for i in rng.choice(len(wl), a.n_obs, replace=False)]
    half = a.n_obs // 2
    fq = d / "fastq"
    fq.mkdir()
    stats = [
        write_fastq(
            a.X[rows],
            bcs[rows],
            genome,
            list(a.var["gene_ids"]),
            fq / f"S1_S1_L00{lane}_R1_001.fastq.gz",
            fq / f"S1_S1_L00{lane}_R2_001.fastq.gz",
            seed=lane,
        )
        for lane, rows in ((1, slice(0, half)), (2, slice(half, None)))
    ]
    truth = a.copy()
    truth.obs_names = [b + "-1" for b in bcs]
    return {"dir": d, "truth": truth, "stats": stats}


def _params(quantifier, **kw):
    calling = CellCalling("inflection", None, 100, 0.01, 1000)
    base = dict(
        quantifier=quantifier,
        chemistry="10xv3",
        whitelist="kit",
        features="gene",
        keep_bam=False,
        cell_calling=calling,
        seed=0,
    )
    return RnaQuantify(**{**base, **kw})


@pytest.fixture(scope="module")
def counted(sim):
    """Both quantifiers on the simulated reads, through the rule functions."""
    from immunoprofiler.pipeline import rna_reference

    d = sim["dir"]
    out = {}
    pairs = find_read_pairs(d / "fastq", "S1")
    for q in ("kallisto", "starsolo") if STAR else ("kallisto",):
        index = d / f"index_{q}"
        rna_reference(d / "genome.fa", d / "genes.gtf", out=index, params=_params(q), threads=2)
        out[q] = _quantify(
            pairs,
            index,
            d / q,
            _params(q, keep_bam=q == "starsolo"),
            whitelist_file=d / "whitelist.txt",
        )
    return out


def _quantify(pairs, index, o, params, **kw):
    """``rna_quantify`` of ``pairs`` with its outputs in ``o`` (returned), sample ``S1``."""
    from immunoprofiler.pipeline import rna_quantify

    rna_quantify(
        [str(p.r1) for p in pairs],
        [str(p.r2) for p in pairs],
        index,
        out_raw=o / "raw.h5",
        out_filtered=o / "filtered.h5",
        table=o / "table.tsv",
        workdir=o / "work",
        bam=o / "possorted_genome_bam.bam",
        sample_id="S1",
        params=params,
        threads=2,
        **kw,
    )
    return o


def _raw(path):
    from immunoprofiler.io.tenx import read_10x_h5

    return read_10x_h5(path)


def _against_truth(adata: ad.AnnData, truth: ad.AnnData) -> tuple[float, float, np.ndarray]:
    """(share of true barcodes found, UMIs counted / UMIs simulated in them, per-cell
    totals) of ``adata`` against ``truth``, genes matched by id."""
    found = truth.obs_names.isin(adata.obs_names)
    sub = adata[truth.obs_names[found]]
    cols = pd.Index(sub.var["gene_ids"]).get_indexer(truth.var["gene_ids"])
    X = sp.csr_matrix(sub.X)[:, cols]
    return found.mean(), X.sum() / truth.X[found].sum(), np.asarray(X.sum(axis=1)).ravel()


@pytest.mark.slow
def test_both_quantifiers_recover_the_simulated_truth_and_agree(sim, counted):
    truth = sim["truth"]
    totals = {}
    for q, o in counted.items():
        raw = _raw(o / "raw.h5")
        share, ratio, totals[q] = _against_truth(raw, truth)
        assert share >= 0.99, (q, share)  # every simulated barcode found, corrected
        # STARsolo corrects UMI errors (1MM_CR): the simulated UMIs; kallisto|bustools
        # counts a UMI with a sequencing error twice (0.1 % per base: ~1 % of UMIs)
        assert 0.98 <= ratio <= (1.005 if q == "starsolo" else 1.03), (q, ratio)
        t = pd.read_csv(o / "table.tsv", sep="\t").iloc[0]
        assert t["reads_total"] == sum(s["reads"] for s in sim["stats"])
        assert t["chemistry"] == "10xv3" and t["files"] == 4
        assert t["valid_barcodes"] > 0.99 and t["q30_barcode"] > 0.95
        assert 0.3 < t["sequencing_saturation"] < 0.7  # ~2 reads per UMI
        # cells called: the simulated cells, not the empty droplets
        filt = _raw(o / "filtered.h5")
        state = truth.obs["true_state"].reindex(filt.obs_names)
        assert (state != "empty").mean() > 0.98
        assert filt.n_obs >= 0.9 * (truth.obs["true_state"] != "empty").sum()
        assert list(filt.var["gene_symbols"][:3]) == list(truth.var_names[:3])  # the GTF's names
    if len(totals) == 2:
        r = np.corrcoef(totals["kallisto"], totals["starsolo"])[0, 1]
        assert r >= 0.99, r
        called = {q: set(_raw(o / "filtered.h5").obs_names) for q, o in counted.items()}
        same = len(called["kallisto"] & called["starsolo"]) / len(
            called["kallisto"] | called["starsolo"]
        )
        assert same >= 0.95, same


@pytest.mark.slow
@needs_star
def test_starsolo_bam_counted_by_rna_bam_count_equals_its_matrix(sim, counted, tmp_path):
    """STARsolo's BAM (CB/UB/GX/GN) through our own BAM counter: the same matrix."""
    from immunoprofiler.params import StepParams
    from immunoprofiler.pipeline import rna_bam_count
    from tests.conftest import default_config

    params = StepParams.from_config(default_config()).rna_bam_count
    o = counted["starsolo"]
    rna_bam_count(
        o / "possorted_genome_bam.bam",
        out_raw=tmp_path / "raw.h5",
        out_filtered=tmp_path / "filtered.h5",
        table=tmp_path / "t.tsv",
        sample_id="S1",
        params=params,
    )
    ours, solo = _raw(tmp_path / "raw.h5"), _raw(o / "raw.h5")
    ours.obs_names = ours.obs_names + "-1"  # STARsolo's CB has no "-1"; the matrices do
    common = ours.obs_names.intersection(solo.obs_names)
    assert len(common) == ours.n_obs
    a = ours[common]
    b = solo[common][:, pd.Index(solo.var["gene_ids"]).get_indexer(a.var["gene_ids"])]
    diff = abs(sp.csr_matrix(a.X) - sp.csr_matrix(b.X)).sum()
    # our counter dedups UMIs exactly; STARsolo's 1MM_CR merges one-mismatch UMIs
    # before writing UB, so the BAM's UB already carries the corrected UMI
    assert diff / b.X.sum() < 0.001, diff


def test_reference_errors_name_the_file_and_problem(tmp_path, sim):
    d = sim["dir"]
    genes = check_reference(d / "genome.fa", d / "genes.gtf")
    assert list(genes["gene_name"][:3]) == list(sim["truth"].var_names[:3])
    no_name = tmp_path / "no_name.gtf"
    no_name.write_text((d / "genes.gtf").read_text().replace('gene_name "', 'gene_nom "'))
    with pytest.raises(
        ReferenceError, match=r"no_name.gtf line 3: exon of ENSGSIM0+ has no gene_name"
    ):
        gtf_genes(no_name)
    renamed = tmp_path / "renamed.gtf.gz"
    with gzip.open(renamed, "wt") as fh:
        fh.write((d / "genes.gtf").read_text().replace("chr1\t", "1\t").replace("chr2\t", "2\t"))
    with pytest.raises(
        ReferenceError,
        match=r"chromosomes absent from FASTA .*genome.fa: 1, 2 .*'chr1' in one, '1' in the other",
    ):
        check_reference(d / "genome.fa", renamed)


@pytest.mark.slow
def test_bad_reads_are_this_samples_errors(sim, counted, tmp_path):
    """A truncated file, R1 shorter than barcode + UMI, another kit's reads: the sample's
    error (excluded with on_sample_failure: exclude), naming sample and file."""
    from immunoprofiler.failures import read_record
    from immunoprofiler.pipeline import rna_quantify

    d = sim["dir"]
    pairs = find_read_pairs(d / "fastq", "S1")
    index = d / "index_kallisto"
    r1 = pairs[0].r1.read_bytes()
    cut = tmp_path / "cut_S1_L001_R1_001.fastq.gz"
    cut.write_bytes(r1[: len(r1) // 2])
    short = tmp_path / "short_R1.fastq.gz"
    with gzip.open(pairs[0].r1, "rb") as src, gzip.open(short, "wb") as dst:
        for i, line in enumerate(src):
            dst.write(line[:20] + b"\n" if i % 2 == 1 else line)
    cases = [
        (cut, {}, rf"sample S1: {cut}: truncated or corrupt gzip"),
        (short, {}, r"sample S1: R1 reads are 20 bases, shorter than barcode \+ UMI"),
        (
            pairs[0].r1,
            {"chemistry": "10xv2"},
            r"sample S1: the reads' barcodes are not those of the configured chemistry",
        ),
    ]
    for r1_file, kw, message in cases:
        args = dict(
            out_raw=tmp_path / "raw.h5",
            out_filtered=tmp_path / "filtered.h5",
            table=tmp_path / "t.tsv",
            workdir=tmp_path / "work",
            whitelist_file=None if kw else d / "whitelist.txt",  # None: the kit's own list
            sample_id="S1",
            params=_params("kallisto", **kw),
        )
        with pytest.raises((FastqError, ChemistryError), match=message):
            rna_quantify([str(r1_file)], [str(pairs[0].r2)], index, **args)
        rna_quantify([str(r1_file)], [str(pairs[0].r2)], index, on_failure="exclude", **args)
        assert read_record(tmp_path / "filtered.h5").sample_id == "S1"


@pytest.mark.slow
def test_chemistry_is_detected_on_v2_and_v3_runs(tmp_path):
    """Reads whose barcodes come from 10x's v2 and v3 whitelists (as kb-python installs
    them): each run's kit is found from its barcodes."""
    from immunoprofiler.io.chemistry import detect_chemistry, packaged_whitelist, whitelist_array

    lists = {c.whitelist: packaged_whitelist(c) for c in CHEMISTRIES.values()}
    rng = np.random.default_rng(0)
    for kit, other in (("10xv2", "10xv3"), ("10xv3", "10xv2")):
        pool = whitelist_array(lists[CHEMISTRIES[kit].whitelist])
        bcs = [pool[i] for i in rng.choice(len(pool), 2000)]
        r1 = [b + b"ACGT" * 3 + b"TTTT" for b in bcs]  # barcode + UMI + poly-T: 32 bases
        found, evidence = detect_chemistry(r1, lists, sample="S")
        assert found.name == kit, evidence
        assert evidence["whitelist_fraction"][CHEMISTRIES[kit].whitelist] == 1.0
        # reads of one kit configured as the other: refused, with the shares found
        with pytest.raises(
            ChemistryError, match=r"sample S: the reads' barcodes are not those of the configured"
        ):
            detect_chemistry(r1, lists, sample="S", configured=other)


@pytest.mark.slow
def test_gene_full_counts_intronic_reads(tmp_path):
    """Single-nucleus-like reads (60 % of molecules from the unspliced pre-mRNA): ``features:
    gene_full`` (kallisto's nac index summed, STARsolo's GeneFull) counts them all; ``gene``
    misses the molecules none of whose reads lies within exons (about a tenth here: the
    simulated pre-mRNAs are about half exon, and a molecule is read twice on average)."""
    from immunoprofiler.pipeline import rna_reference

    a = simulate_pbmc(120, seed=3, median_umis=600, frac_empty=0.0)
    genome = write_genome(list(a.var_names), tmp_path / "g.fa", tmp_path / "g.gtf", seed=3)
    wl = simulated_whitelist(1000, seed=3)
    (tmp_path / "wl.txt").write_text("\n".join(wl) + "\n")
    r1, r2 = tmp_path / "N_S1_L001_R1_001.fastq.gz", tmp_path / "N_S1_L001_R2_001.fastq.gz"
    write_fastq(a.X, wl[: a.n_obs], genome, list(a.var["gene_ids"]), r1, r2, intronic=0.6)
    truth = a.copy()
    truth.obs_names = [b + "-1" for b in wl[: a.n_obs]]
    ratios = {}
    for q in ("kallisto", "starsolo") if STAR else ("kallisto",):
        for features in ("gene", "gene_full"):
            p = _params(q, features=features)
            index = tmp_path / f"index_{q}_{features}"
            rna_reference(tmp_path / "g.fa", tmp_path / "g.gtf", out=index, params=p, threads=2)
            o = _quantify(
                [ReadPair(r1, r2)],
                index,
                tmp_path / f"{q}_{features}",
                p,
                whitelist_file=tmp_path / "wl.txt",
            )
            ratios[q, features] = _against_truth(_raw(o / "raw.h5"), truth)[1]
    for q in {q for q, _ in ratios}:
        assert 0.98 <= ratios[q, "gene_full"] <= 1.03, ratios
        assert ratios[q, "gene"] < ratios[q, "gene_full"] - 0.05, ratios
