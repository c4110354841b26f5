"""A PBMC-like scRNA-seq simulator with ground truth, and the embedded demo cohort.

The simulator draws UMI counts for immune populations with real human gene
symbols. Each population raises its own marker genes (a set chosen for the
simulator, overlapping but not identical to the annotation table) and a random
"programme" of background genes; each batch multiplies every gene by its own
log-normal factor and shifts library sizes (a visible batch effect). Barcodes that
are not single healthy cells are added on purpose: damaged cells (high
mitochondrial fraction), heterotypic doublets and empty-ish droplets (ambient
RNA only). The truth is kept in ``obs["true_cell_type"]`` and ``obs["true_state"]``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from .layout import (
    DEMO_CYTO_SAMPLES,
    DEMO_FASTQ,
    DEMO_SAMPLES,
    FASTQ_LANES,
    demo_paths,
)

logger = logging.getLogger(__name__)

#: gzip without a time stamp in its header: the demo files are byte-identical on every run
GZIP = {"method": "gzip", "mtime": 0}

# population: (PBMC fraction, library-size factor, marker genes)
POPULATIONS: dict[str, tuple[float, float, tuple[str, ...]]] = {
    "CD4 T cell": (
        0.27,
        1.0,
        ("CD3E", "CD3D", "CD3G", "CD2", "IL7R", "CD4", "LTB", "TCF7", "CCR7", "LEF1", "SELL"),
    ),
    "CD8 T cell": (0.14, 1.0, ("CD3E", "CD3D", "CD3G", "CD2", "CD8A", "CD8B", "GZMK", "CCL5")),
    "regulatory T cell": (
        0.03,
        1.0,
        ("CD3E", "CD3D", "CD2", "CD4", "FOXP3", "IL2RA", "CTLA4", "IKZF2", "TIGIT"),
    ),
    "gamma-delta T cell": (
        0.03,
        1.0,
        ("CD3E", "CD3D", "CD2", "TRDC", "TRGC1", "TRGC2", "TRDV2", "TRGV9", "NKG7"),
    ),
    "MAIT cell": (
        0.02,
        1.0,
        ("CD3E", "CD3D", "CD2", "SLC4A10", "TRAV1-2", "ZBTB16", "KLRB1", "IL7R", "CCR6"),
    ),
    "NK cell": (
        0.10,
        1.0,
        ("NKG7", "GNLY", "KLRD1", "KLRF1", "NCAM1", "PRF1", "GZMB", "FCGR3A", "CD247"),
    ),
    "B cell": (0.10, 1.0, ("MS4A1", "CD79A", "CD79B", "CD19", "BANK1", "PAX5", "CD74", "HLA-DRA")),
    "plasma cell": (
        0.01,
        1.6,
        ("JCHAIN", "MZB1", "TNFRSF17", "SDC1", "IGHG1", "XBP1", "PRDM1", "CD79A"),
    ),
    "classical monocyte": (
        0.18,
        1.3,
        ("CD14", "LYZ", "S100A8", "S100A9", "VCAN", "FCN1", "CST3", "CD74", "HLA-DRA"),
    ),
    "non-classical monocyte": (
        0.04,
        1.3,
        ("FCGR3A", "MS4A7", "CDKN1C", "LST1", "AIF1", "CST3", "LYZ"),
    ),
    "conventional dendritic cell": (
        0.02,
        1.2,
        ("FCER1A", "CD1C", "CLEC10A", "HLA-DQA1", "CST3", "CD74", "HLA-DRA"),
    ),
    "plasmacytoid dendritic cell": (
        0.02,
        1.0,
        ("LILRA4", "CLEC4C", "IL3RA", "PLD4", "SERPINF1", "TCF4", "IRF7", "GZMB"),
    ),
    "platelet": (0.02, 0.6, ("PPBP", "PF4", "GP9", "ITGA2B", "NRGN", "TUBB1")),
    "erythrocyte": (0.01, 0.6, ("HBB", "HBA1", "HBA2", "ALAS2", "CA1")),
    "progenitor": (0.01, 1.0, ("CD34", "PRSS57", "CYTL1", "SOX4", "SPINK2")),
}
MT_GENES = tuple(
    f"MT-{g}"
    for g in (
        "ND1",
        "ND2",
        "CO1",
        "CO2",
        "ATP8",
        "ATP6",
        "CO3",
        "ND3",
        "ND4L",
        "ND4",
        "ND5",
        "ND6",
        "CYB",
    )
)
RIBO_GENES = tuple(
    [
        f"RPL{i}"
        for i in (
            3,
            4,
            5,
            6,
            7,
            8,
            9,
            10,
            11,
            13,
            14,
            15,
            18,
            19,
            21,
            23,
            24,
            26,
            27,
            28,
            29,
            30,
            31,
            32,
            34,
            35,
            36,
            37,
            38,
            39,
            41,
        )
    ]
    + [
        f"RPS{i}"
        for i in (
            2,
            3,
            5,
            6,
            7,
            8,
            9,
            10,
            11,
            12,
            13,
            14,
            15,
            16,
            18,
            19,
            20,
            21,
            23,
            24,
            25,
            26,
            27,
            28,
            29,
        )
    ]
)
HOUSEKEEPING = (
    "ACTB",
    "GAPDH",
    "B2M",
    "MALAT1",
    "TMSB4X",
    "EEF1A1",
    "FTL",
    "FTH1",
    "TPT1",
    "HLA-A",
    "HLA-B",
    "HLA-C",
)

# The demo cohort: 4 samples, 2 patients x 2 time points, 2 processing batches, 4 input formats.
# P1 responds to anti-PD-1, P2 does not; the responder carries 3x more non-classical monocytes
# (every modality, both time points): the effect the differential-abundance test must find.
RESPONSE_EFFECT = {"R": {"non-classical monocyte": 3.0}, "NR": {}}
# ... and activated CD8 T cells: PD-1 up by 1 arcsinh unit (CyTOF and flow), an activation
# program of genes switched on (RNA): the state effects the state analyses must find
RESPONSE_STATE = {"R": {"CD8 T cell": {"PD-1": 1.0}}, "NR": {}}
ACTIVATION_GENES = ("LAG3", "TIGIT", "HLA-DRB1", "IRF7", "XCL1", "CCL4", "GZMH")
RESPONSE_PROGRAM = {"R": {"CD8 T cell": ACTIVATION_GENES}, "NR": {}}
# the FASTQ sample is a shallower library than the others (median UMIs per cell), so its
# ~2.5M read pairs keep the quick start's FASTQ step to about a minute on 2 cores
FASTQ_MEDIAN_UMIS = 1000.0
ADT_PANEL = {
    "CD3_TotalSeqB": "CD3E",
    "CD4_TotalSeqB": "CD4",
    "CD8a_TotalSeqB": "CD8A",
    "CD14_TotalSeqB": "CD14",
    "CD19_TotalSeqB": "CD19",
    "CD56_TotalSeqB": "NCAM1",
}


def gene_universe(n_genes: int | None = None) -> list[str]:
    """Real human symbols: markers, MT, ribosomal, housekeeping and scanpy's bundled PBMC genes.

    Beyond the real symbols available offline (~1,000), names ``SIMG00001``... pad to ``n_genes``.
    """
    import scanpy as sc

    seen: dict[str, None] = {}
    for _, _, genes in POPULATIONS.values():
        seen.update(dict.fromkeys(genes))
    seen.update(dict.fromkeys(MT_GENES + RIBO_GENES + HOUSEKEEPING))
    seen.update(dict.fromkeys(str(g) for g in sc.datasets.pbmc68k_reduced().var_names))
    genes = list(seen)
    if n_genes is not None:
        if n_genes < len(POPULATIONS) * 10:
            raise ValueError(f"n_genes={n_genes} is too small for the simulated populations")
        genes = genes[:n_genes] + [f"SIMG{i:05d}" for i in range(max(0, n_genes - len(genes)))]
    return genes


# shares of a healthy cell's UMIs, independent of how many genes are simulated
SHARE = {"mt": 0.04, "ribo": 0.20, "housekeeping": 0.10}
MARKER_ON, MARKER_OFF = (
    2e-3,
    2e-5,
)  # share of one marker gene when its population expresses it / not


def _profiles(genes: list[str], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Relative expression (populations × genes) and the ambient profile."""
    g = pd.Index(genes)
    groups = {
        "mt": g.get_indexer(list(MT_GENES)),
        "ribo": g.get_indexer(list(RIBO_GENES)),
        "housekeeping": g.get_indexer(list(HOUSEKEEPING)),
    }
    marker_idx = np.unique(g.get_indexer([m for _, _, ms in POPULATIONS.values() for m in ms]))
    background = np.setdiff1d(np.arange(len(genes)), np.concatenate([marker_idx, *groups.values()]))
    base = np.zeros(len(genes))
    for name, idx in groups.items():
        w = rng.lognormal(0.0, 0.5, size=len(idx))
        base[idx] = SHARE[name] * w / w.sum()
    base[marker_idx] = MARKER_OFF * rng.lognormal(0.0, 0.5, size=len(marker_idx))
    w = rng.lognormal(0.0, 1.8, size=len(background))  # heavy-tailed, as in real transcriptomes
    base[background] = (1.0 - sum(SHARE.values()) - base[marker_idx].sum()) * w / w.sum()
    prof = np.tile(base, (len(POPULATIONS), 1))
    for i, (_, _, markers) in enumerate(POPULATIONS.values()):
        idx = g.get_indexer(list(markers))
        prof[i, idx] = MARKER_ON * rng.lognormal(0.0, 0.4, size=len(idx))
        prog = rng.choice(background, size=min(40, len(background)), replace=False)
        prof[i, prog] *= np.exp(rng.normal(0, 1.0, size=len(prog)))
    prof /= prof.sum(axis=1, keepdims=True)
    fracs = np.array([f for f, _, _ in POPULATIONS.values()])
    ambient = fracs @ prof
    return prof, ambient / ambient.sum()


def _draw(lam: np.ndarray, rng: np.random.Generator) -> sp.csr_matrix:
    return sp.csr_matrix(rng.poisson(lam).astype(np.float32))


def simulate_pbmc(
    n_cells: int = 1500,
    *,
    n_genes: int | None = None,
    batch: int = 0,
    n_batches: int = 2,
    frac_damaged: float = 0.04,
    frac_doublets: float = 0.04,
    frac_empty: float = 0.04,
    median_umis: float = 3000.0,
    batch_strength: float = 0.3,
    seed: int = 0,
    chunk_size: int = 2000,
    abundance: Mapping[str, float] | None = None,
    program: Mapping[str, Sequence[str]] | None = None,
) -> ad.AnnData:
    """Simulate one PBMC sample of ``n_cells`` barcodes (raw counts in ``X``).

    ``abundance`` multiplies populations' weights (e.g. ``{"non-classical monocyte": 3}``)
    before the cell types are drawn: a built-in compositional effect. ``program`` switches
    genes on in populations (``{population: genes}``, each gene at a marker gene's level):
    a state effect, the populations' markers untouched.

    Populations, their markers and the batch factors depend only on ``seed``, so samples
    simulated with the same seed and different ``batch`` share biology and differ by batch.
    The per-sample draw uses ``seed + 1000 * (batch + 1) + n_cells``.

    Examples
    --------
    >>> adata = simulate_pbmc(500, batch=1, seed=0)
    >>> adata.obs["true_state"].value_counts().index[0]
    'cell'
    """
    genes = gene_universe(n_genes)
    shared = np.random.default_rng(seed)
    prof, ambient = _profiles(genes, shared)
    if program:  # after the shared draws: the other samples' profiles do not move
        prof = prof.copy()
        names = list(POPULATIONS)
        for pop, on in program.items():
            prof[names.index(pop), pd.Index(genes).get_indexer(list(on))] += MARKER_ON
        prof /= prof.sum(axis=1, keepdims=True)
    batch_factors = np.exp(shared.normal(0, batch_strength, size=(n_batches, len(genes))))
    batch_factors[0] = 1.0
    if not 0 <= batch < n_batches:
        raise ValueError(f"batch={batch} outside 0..{n_batches - 1}")
    bprof = prof * batch_factors[batch]
    bprof /= bprof.sum(axis=1, keepdims=True)
    mt = np.isin(np.asarray(genes), MT_GENES)
    rng = np.random.default_rng([seed, batch, n_cells])

    names = list(POPULATIONS)
    fracs = np.array([f * (abundance or {}).get(n, 1.0) for n, (f, _, _) in POPULATIONS.items()])
    size_f = np.array([s for _, s, _ in POPULATIONS.values()])
    state = rng.choice(
        ["cell", "damaged", "doublet", "empty"],
        size=n_cells,
        p=[1 - frac_damaged - frac_doublets - frac_empty, frac_damaged, frac_doublets, frac_empty],
    )
    pop = rng.choice(len(names), size=n_cells, p=fracs / fracs.sum())
    pop2 = rng.choice(len(names), size=n_cells, p=fracs / fracs.sum())
    same = (state == "doublet") & (pop2 == pop)
    pop2[same] = (pop[same] + 1 + rng.integers(0, len(names) - 1, size=same.sum())) % len(names)
    lib = (
        rng.lognormal(np.log(median_umis * (1.15 if batch % 2 else 0.85)), 0.3, size=n_cells)
        * size_f[pop]
    )
    lib[state == "doublet"] *= 1.8
    lib[state == "empty"] = rng.lognormal(np.log(120), 0.5, size=(state == "empty").sum())

    blocks = []
    for start in range(0, n_cells, chunk_size):
        sl = slice(start, min(start + chunk_size, n_cells))
        p = bprof[pop[sl]].copy()
        dbl = state[sl] == "doublet"
        p[dbl] = 0.5 * (bprof[pop[sl][dbl]] + bprof[pop2[sl][dbl]])
        emp = state[sl] == "empty"
        p[emp] = ambient
        dmg = state[sl] == "damaged"
        if dmg.any():
            p[np.ix_(dmg, mt)] *= 25.0
            p[dmg] /= p[dmg].sum(axis=1, keepdims=True)
        p[:, mt] *= np.exp(rng.normal(0, 0.35, size=(p.shape[0], 1)))  # per-cell mito content
        p *= np.exp(rng.normal(0, 0.25, size=p.shape))  # cell-to-cell biological noise
        p /= p.sum(axis=1, keepdims=True)
        blocks.append(_draw(p * lib[sl, None], rng))
    X = sp.vstack(blocks, format="csr")
    truth = np.asarray(names, dtype=object)[pop]
    truth[state == "doublet"] = "doublet"
    truth[state == "empty"] = "empty"
    truth[state == "damaged"] = "damaged"
    bc = _barcodes(n_cells, rng)
    obs = pd.DataFrame(
        {"true_cell_type": truth, "true_state": state, "true_population": np.asarray(names)[pop]},
        index=bc,
    )
    var = pd.DataFrame(
        {
            "gene_ids": [f"ENSGSIM{i:08d}" for i in range(len(genes))],
            "feature_types": "Gene Expression",
        },
        index=genes,
    )
    return ad.AnnData(X=X, obs=obs, var=var)


def _barcodes(n: int, rng: np.random.Generator) -> list[str]:
    letters = np.array(list("ACGT"))
    out: set[str] = set()
    while len(out) < n:
        for s in letters[rng.integers(0, 4, size=(n, 16))]:
            out.add("".join(s) + "-1")
    return sorted(out)[:n]


def _with_adt(adata: ad.AnnData, rng: np.random.Generator) -> ad.AnnData:
    """Append Antibody Capture features whose counts follow their genes' expression."""
    cols = []
    for gene in ADT_PANEL.values():
        x = np.asarray(adata[:, gene].X.todense()).ravel()
        cols.append(rng.poisson(20 + 150 * (x > 0) + 30 * x))
    adt = ad.AnnData(
        X=sp.csr_matrix(np.column_stack(cols).astype(np.float32)),
        obs=adata.obs[[]],
        var=pd.DataFrame(
            {"gene_ids": list(ADT_PANEL), "feature_types": "Antibody Capture"},
            index=list(ADT_PANEL),
        ),
    )
    out = ad.concat([adata, adt], axis=1, merge="first")
    out.obs = adata.obs
    return out


def write_demo(
    outdir: str | Path = "resources/demo",
    *,
    n_cells: int = 1500,
    n_events: int = 4000,
    n_genes: int | None = None,
    seed: int = 0,
    samples: Sequence[str] | None = None,
    fastq: bool = True,
) -> pd.DataFrame:
    """Write the demo cohort: one scRNA-seq input per sample (four formats) with
    ``truth.tsv.gz``, and CyTOF and flow FCS files with ``cyto_truth.tsv.gz``; with ``fastq``
    also :data:`DEMO_FASTQ`'s reads and the genome (:func:`write_demo_fastq`).

    Returns the RNA ground-truth table (``barcode, sample_id, true_cell_type, true_state``).
    """
    from ..io.tenx import write_10x_h5, write_10x_mtx

    outdir = Path(outdir)
    paths = demo_paths(outdir)
    rng = np.random.default_rng(seed)
    truth = []
    sheet = (
        DEMO_SAMPLES if samples is None else DEMO_SAMPLES[DEMO_SAMPLES["sample_id"].isin(samples)]
    )
    for i, r in enumerate(sheet.itertuples()):
        b = int(r.batch[-1]) - 1
        a = simulate_pbmc(
            n_cells + 37 * i,
            n_genes=n_genes,
            batch=b,
            seed=seed,
            abundance=RESPONSE_EFFECT[r.response],
            program=RESPONSE_PROGRAM[r.response],
            **({"median_umis": FASTQ_MEDIAN_UMIS} if r.sample_id == DEMO_FASTQ else {}),
        )
        path = Path(paths[r.sample_id])
        path.parent.mkdir(parents=True, exist_ok=True)
        if r.sample_id == DEMO_FASTQ:
            a.obs_names = _kit_barcodes(a.n_obs, rng)
            if fastq:
                write_demo_fastq(outdir, a, seed=seed)
        if r.format == "mex_v3":
            write_10x_mtx(_with_adt(a, rng), path, version=3)
        elif r.format == "mex_v2":
            write_10x_mtx(a, path, version=2)
        elif r.format == "h5_v3":
            write_10x_h5(a, path)
        else:
            out = ad.AnnData(X=None, obs=a.obs[[]], var=a.var)
            out.layers["counts"] = a.X
            out.write_h5ad(path)
        t = a.obs.reset_index(names="barcode")
        t.insert(1, "sample_id", r.sample_id)
        truth.append(t)
        logger.info("demo sample %s: %d barcodes -> %s", r.sample_id, a.n_obs, path)
    df = pd.concat(truth, ignore_index=True)
    df.to_csv(outdir / "truth.tsv.gz", sep="\t", index=False, compression=GZIP)
    write_demo_cytometry(outdir, n_events=n_events, seed=seed)
    return df


def _kit_barcodes(n: int, rng: np.random.Generator) -> list[str]:
    """``n`` barcodes of 10x's 3' v3 whitelist (as kb-python installs it), ``-1`` suffixed."""
    from ..io.chemistry import CHEMISTRIES, packaged_whitelist, whitelist_array

    pool = whitelist_array(packaged_whitelist(CHEMISTRIES["10xv3"]))
    return [pool[i].decode() + "-1" for i in np.sort(rng.choice(len(pool), n, replace=False))]


def write_demo_fastq(outdir: str | Path, adata: ad.AnnData, *, seed: int = 0) -> dict:
    """The demo genome (every demo gene) and ``adata``'s counts as 10x 3' v3 reads, its
    barcodes split over :data:`FASTQ_LANES` (1.25 reads per UMI, 0.1 % sequencing errors)."""
    from .reads import write_fastq, write_genome

    paths = demo_paths(outdir)
    Path(paths["genome_fasta"]).parent.mkdir(parents=True, exist_ok=True)
    genome = write_genome(
        list(adata.var_names), paths["genome_fasta"], paths["genome_gtf"], seed=seed
    )
    Path(paths[f"fastq_{FASTQ_LANES[0]}_R1"]).parent.mkdir(parents=True, exist_ok=True)
    bcs = [b.removesuffix("-1") for b in adata.obs_names]
    parts = np.array_split(np.arange(adata.n_obs), len(FASTQ_LANES))
    stats = {}
    for k, (lane, rows) in enumerate(zip(FASTQ_LANES, parts, strict=True)):
        stats[lane] = write_fastq(
            adata.X[rows],
            [bcs[i] for i in rows],
            genome,
            list(adata.var["gene_ids"]),
            paths[f"fastq_{lane}_R1"],
            paths[f"fastq_{lane}_R2"],
            reads_per_umi=1.25,
            seed=seed + k,
        )
        logger.info("demo FASTQ %s %s: %s", DEMO_FASTQ, lane, stats[lane])
    return stats


def write_demo_cytometry(
    outdir: str | Path, *, n_events: int = 4000, seed: int = 0
) -> pd.DataFrame:
    """The demo's FCS files (CyTOF with a panel TSV, flow with ``$SPILLOVER``) and
    ``cyto_truth.tsv.gz`` (``modality, sample_id, event, true_cell_type, kind``)."""
    from ..io.panel import derive_panel
    from .cytometry import simulate_cytometry, write_fcs

    outdir = Path(outdir)
    paths = demo_paths(outdir)
    truth = []
    for i, r in enumerate(DEMO_CYTO_SAMPLES.itertuples()):
        b = int(r.batch[-1]) - 1
        X, names, desc, t, spill = simulate_cytometry(
            n_events + 53 * i,
            modality=r.modality,
            batch=b,
            seed=seed + 100 + i,
            abundance=RESPONSE_EFFECT[r.response],
            state=RESPONSE_STATE[r.response],
        )
        write_fcs(
            paths[f"{r.modality}_{r.sample_id}"],
            X,
            names,
            desc,
            spillover=spill,
            keywords={"$SRC": f"immunoprofiler demo {r.sample_id}", "$CYT": r.modality},
        )
        if r.modality == "cytof" and i == 0:
            derive_panel(names, desc, modality="cytof").drop(columns="role").to_csv(
                paths["cytof_panel"], sep="\t", index=False
            )
        t.insert(0, "sample_id", r.sample_id)
        t.insert(0, "modality", r.modality)
        truth.append(t)
    df = pd.concat(truth, ignore_index=True)
    df.to_csv(outdir / "cyto_truth.tsv.gz", sep="\t", index=False, compression=GZIP)
    return df
