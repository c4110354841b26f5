"""Typed step parameters, built from the validated configuration in one place.

Each workflow step that takes science settings gets one frozen dataclass whose fields are
exactly the keys of its config section (plus the cohort ``seed`` where the step is
stochastic). The dataclasses have **no defaults**: every default lives in
``workflow/schemas/config.schema.yaml``, which Snakemake fills in before
:meth:`StepParams.from_config` builds them; a key the schema and a dataclass disagree on
is an error here, not a silently ignored setting. Keys that name files (marker tables,
models, gating files) are rule inputs, not parameters.

This module imports nothing heavy: Snakemake unpickles these objects in every job before the
adapter has set the job's thread limits.

Examples
--------
>>> p = StepParams.from_config(config)  # doctest: +SKIP
>>> p.rna_qc.max_pct_mt  # doctest: +SKIP
20
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

IntegrationMethod = Literal["scvi", "harmony", "none"]
AnnotationMethod = Literal["markers", "celltypist", "scanvi"]
TransformMethod = Literal["arcsinh", "logicle"]
NormalizationMethod = Literal["quantile", "cytonorm", "cytovi", "none"]
DAScale = Literal["log_ratio", "logit", "asin"]
#: events holding NaN/±inf: the file is refused, or they are left out and counted
NonFinite = Literal["error", "drop"]


class ConfigError(ValueError):
    """The configuration and the step parameters disagree (a key one has and the other lacks)."""


def unknown_keys(
    config: Mapping[str, Any], schema: Mapping[str, Any], path: tuple[str, ...] = ()
) -> list[str]:
    """Every key of ``config`` the JSON ``schema`` does not know (where it allows no others),
    each with the nearest valid key: a typo must not silently fall back to a default.

    Examples
    --------
    >>> schema = {"properties": {"seed": {}}, "additionalProperties": False}
    >>> unknown_keys({"sead": 1}, schema)
    ["config key 'sead' is not known (did you mean 'seed'?)"]
    """
    props = schema.get("properties", {})
    problems = []
    for key, value in config.items():
        where = ".".join((*path, str(key)))
        if key in props:
            if isinstance(value, Mapping) and "properties" in props[key]:
                problems += unknown_keys(value, props[key], (*path, str(key)))
        elif schema.get("additionalProperties", True) is False:
            near = difflib.get_close_matches(str(key), list(props), n=1, cutoff=0.6)
            hint = f"did you mean '{near[0]}'?" if near else f"valid here: {', '.join(props)}"
            problems.append(f"config key '{where}' is not known ({hint})")
    return problems


def _fields(cls) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def _frozen(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def build(
    cls,
    section: Mapping[str, Any],
    *,
    where: str,
    files: tuple[str, ...] = (),
    **extra: Any,
):
    """``cls`` from the config ``section`` (every key used, none missing) plus ``extra``.

    Keys in ``files`` are rule inputs and are skipped. Lists become tuples (the dataclasses
    are frozen and hashable).
    """
    names = set(_fields(cls))
    given = {k for k in section if k not in files}
    unknown = sorted(given - names)
    missing = sorted(names - given - set(extra))
    if unknown or missing:
        raise ConfigError(
            f"config '{where}': keys {unknown} have no parameter and parameters {missing} no "
            f"key (the schema and immunoprofiler.params disagree)"
        )
    return cls(**{k: _frozen(section[k]) for k in given}, **extra)


@dataclass(frozen=True)
class BamCountParams:
    """Tags and read filters of :func:`immunoprofiler.io.bam.count_bam` (the defaults are
    Cell Ranger ≥ 2's, as in the schema's ``rna.bam_count``)."""

    cell_tag: str = "CB"
    cell_fallback_tag: str | None = None  # e.g. "CR" (uncorrected barcode)
    umi_tag: str = "UB"
    umi_fallback_tag: str | None = None  # e.g. "UR"
    gene_tags: tuple[str, ...] = ("GX", "GE")  # gene id; GE = Drop-seq / Optimus
    gene_name_tags: tuple[str, ...] = ("GN",)
    min_mapq: int = 255
    skip_duplicates: bool = False
    buffer_reads: int = 5_000_000


@dataclass(frozen=True)
class RnaIngest:
    """``rna_ingest``: which genome to read from multi-genome 10x files."""

    genome: str | None


@dataclass(frozen=True)
class RnaBamCount:
    """``rna_bam_count``: read filters and tags, UMI correction, cell calling."""

    reads: BamCountParams
    umi_correction: Literal["exact", "directional"]
    cell_calling: Literal["inflection", "knee", "expected", "emptydrops"]
    expected_cells: int | None
    lower: int
    fdr: float
    n_iter: int
    seed: int

    @classmethod
    def from_section(cls, section: Mapping[str, Any], *, seed: int) -> RnaBamCount:
        """The BAM reader's keys go to :class:`~immunoprofiler.io.bam.BamCountParams`."""
        read_keys = _fields(BamCountParams)
        reads = build(
            BamCountParams,
            {k: section[k] for k in read_keys if k in section},
            where="rna.bam_count",
        )
        rest = {k: v for k, v in section.items() if k not in read_keys}
        return build(cls, rest, where="rna.bam_count", reads=reads, seed=seed)


@dataclass(frozen=True)
class CellCalling:
    """Cell calling on a raw matrix (:func:`immunoprofiler.pp.cellcalling.call_cells`)."""

    method: Literal["inflection", "knee", "expected", "emptydrops"]
    expected_cells: int | None
    lower: int
    fdr: float
    n_iter: int


@dataclass(frozen=True)
class RnaQuantify:
    """``rna_quantify``: FASTQ → counts (config ``rna.quantifier``, ``chemistry``,
    ``whitelist``, ``features``, ``keep_bam``, ``cell_calling``)."""

    quantifier: Literal["kallisto", "starsolo"]
    chemistry: str  # "auto" or a name of immunoprofiler.io.chemistry.CHEMISTRIES
    whitelist: str  # "kit" (the kit's, as kb-python installs it), "none", or a file
    features: Literal["gene", "gene_full"]
    keep_bam: bool
    cell_calling: CellCalling
    seed: int

    @classmethod
    def from_config(cls, rna: Mapping[str, Any], *, seed: int) -> RnaQuantify:
        keys = ("quantifier", "chemistry", "whitelist", "features", "keep_bam")
        if rna["chemistry"] == "auto" and rna["whitelist"] not in ("kit", "none"):
            raise ConfigError(
                "rna.chemistry 'auto' is detected from the kits' own whitelists "
                "(rna.whitelist: kit): with a whitelist file, name the chemistry"
            )
        calling = build(CellCalling, rna["cell_calling"], where="rna.cell_calling")
        return cls(**{k: rna[k] for k in keys}, cell_calling=calling, seed=seed)


@dataclass(frozen=True)
class RnaQc:
    """``rna_qc``: per-sample outlier and doublet removal (see :func:`immunoprofiler.pp.qc`)."""

    n_mads_counts: float
    n_mads_genes: float
    n_mads_mt: float
    max_pct_mt: float
    min_genes: int
    min_cells: int
    doublets: bool
    remove_doublets: bool
    expected_doublet_rate: float
    seed: int


@dataclass(frozen=True)
class RnaNormalize:
    """``rna_normalize``: shifted log and batch-aware seurat_v3 highly variable genes."""

    n_top_genes: int
    target_sum: float
    proteins: Literal["union", "intersection"]


@dataclass(frozen=True)
class RnaIntegrate:
    """``rna_integrate`` (see :func:`immunoprofiler.tl.integrate`)."""

    method: IntegrationMethod
    n_latent: int
    n_layers: int
    n_pcs: int
    max_epochs: int | None
    kl_warmup_epochs: int | None
    batch_size: int
    seed: int


@dataclass(frozen=True)
class RnaCluster:
    """``rna_cluster``: neighbours, Leiden and UMAP on the integrated space."""

    n_neighbors: int
    resolution: float
    umap_min_dist: float
    umap_cells: int
    seed: int


@dataclass(frozen=True)
class RnaAnnotate:
    """``rna_annotate``: the method and its settings (files are rule inputs)."""

    method: AnnotationMethod
    min_score: float
    min_expression: float
    split_fraction: float
    min_markers_found: float
    reference_label_key: str
    max_epochs: int | None
    species: Literal["human", "mouse"]
    seed: int


@dataclass(frozen=True)
class Logicle:
    """Logicle parameters (Parks et al. 2006)."""

    t: float
    w: float
    m: float
    a: float


@dataclass(frozen=True)
class CytoIngest:
    """``cyto_preprocess``'s ingest: what to do with events holding a non-finite value."""

    non_finite: NonFinite


@dataclass(frozen=True)
class CytoTransform:
    """``cyto_preprocess``'s transform: arcsinh with the panel's cofactors, or logicle."""

    method: TransformMethod
    logicle: Logicle


@dataclass(frozen=True)
class CytoClean:
    """``cyto_preprocess``'s clean: data-driven gates, or a gating file's population."""

    population: str | None
    mad: float
    bead_min: float


@dataclass(frozen=True)
class CytoPreprocess:
    """``cyto_preprocess``: the per-file stages' parameters."""

    ingest: CytoIngest
    transform: CytoTransform
    clean: CytoClean


@dataclass(frozen=True)
class CytoSpillover:
    """``cyto_spillover``: barcode spillover estimated from a seeded subsample of every
    file (config ``cyto.spillover: barcodes``)."""

    seed: int
    events_per_file: int = 20_000


@dataclass(frozen=True)
class CytoNormalize:
    """``cyto_normalize``: batch normalisation fitted on a seeded subsample."""

    method: NormalizationMethod
    reference_column: str
    n_quantiles: int
    fit_events: int
    som_grid: int
    n_metaclusters: int
    max_epochs: int
    landmarks: bool
    landmark_events: int
    seed: int


@dataclass(frozen=True)
class CytoCluster:
    """``cyto_cluster``: FlowSOM fitted on a seeded subsample, UMAP of a subsample."""

    xdim: int
    ydim: int
    n_metaclusters: int
    rlen: int
    fit_events: int
    umap_events: int
    seed: int


@dataclass(frozen=True)
class CytoAnnotate:
    """``cyto_annotate``: protein gate-rule annotation of metaclusters."""

    min_score: float
    min_expression: float
    split_fraction: float
    seed: int


@dataclass(frozen=True)
class Contrast:
    """The groups compared by the cohort's differential analyses."""

    column: str
    groups: tuple[str, str]
    paired_by: str | None
    covariates: tuple[str, ...] = ()

    def design(self) -> dict[str, Any]:
        """The keyword arguments every differential analysis takes (``column``, ``groups``,
        ``paired_by``, ``covariates``)."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class DifferentialAbundance:
    """``profile_differential_abundance``: the contrast and the scale of the linear model."""

    contrast: Contrast
    transform: DAScale


@dataclass(frozen=True)
class DifferentialState:
    """``profile_differential_state``: the contrast, the cells a sample needs in a type, the
    marker classes tested."""

    contrast: Contrast
    min_cells: int
    marker_classes: tuple[str, ...]


@dataclass(frozen=True)
class DifferentialExpression:
    """``profile_differential_expression``: the contrast, the cells a sample needs in a
    type and the test (``deseq2`` or ``limma-trend``)."""

    contrast: Contrast
    min_cells: int
    method: str = "deseq2"


@dataclass(frozen=True)
class QcStatus:
    """``profile_qc_status``: per-sample pass / fail thresholds."""

    min_cells: int
    min_events: int
    min_fraction_retained: float
    max_fraction_unknown: float


@dataclass(frozen=True)
class Demo:
    """``demo_data``: the size of the simulated cohort."""

    n_cells: int
    n_events: int
    seed: int


@dataclass(frozen=True)
class StepParams:
    """Every step's parameters (see :meth:`from_config`)."""

    demo_data: Demo
    rna_ingest: RnaIngest
    rna_bam_count: RnaBamCount
    rna_quantify: RnaQuantify
    rna_qc: RnaQc
    rna_normalize: RnaNormalize
    rna_integrate: RnaIntegrate
    rna_cluster: RnaCluster
    rna_annotate: RnaAnnotate
    cyto_preprocess: CytoPreprocess
    cyto_spillover: CytoSpillover
    cyto_normalize: CytoNormalize
    cyto_cluster: CytoCluster
    cyto_annotate: CytoAnnotate
    profile_differential_abundance: DifferentialAbundance | None
    profile_differential_state: DifferentialState | None
    profile_differential_expression: DifferentialExpression | None
    profile_qc_status: QcStatus
    on_sample_failure: Literal["exclude", "stop"]

    @classmethod
    def from_config(cls, config: Mapping[str, Any], *, demo_cohort: bool = False) -> StepParams:
        """Build every step's parameters from a config validated (defaults filled in) with
        ``workflow/schemas/config.schema.yaml``.

        ``demo_cohort``: the sheet's RNA samples are all the simulated demo's; only then does
        ``demo.scvi_max_epochs`` stand in for an unset ``rna.integrate.max_epochs`` (and for an
        unset ``kl_warmup_epochs``: the KL weight reaches 1 within the short training). The
        demo's short training never reaches a cohort of real samples, which gets scvi-tools'
        size-based default unless the config sets the epochs."""
        seed = int(config["seed"])
        rna, cyto, prof = config["rna"], config["cyto"], config["profile"]
        demo = {k: v for k, v in config["demo"].items() if k not in ("outdir", "scvi_max_epochs")}
        integrate = dict(rna["integrate"])
        cap = config["demo"]["scvi_max_epochs"]
        if demo_cohort and cap is not None and integrate["max_epochs"] is None:
            integrate["max_epochs"] = cap
            if integrate["kl_warmup_epochs"] is None:
                integrate["kl_warmup_epochs"] = cap
        transform = dict(cyto["transform"])
        logicle = build(Logicle, transform.pop("logicle"), where="cyto.transform.logicle")
        da = ds = de = None
        if prof["contrast"]:
            contrast = {"paired_by": None, **prof["contrast"]}
            contrast["covariates"] = tuple(contrast.get("covariates") or ())
            contrast = build(Contrast, contrast, where="profile.contrast")
            da = DifferentialAbundance(contrast=contrast, transform=prof["transform"])
            ds = DifferentialState(
                contrast=contrast,
                min_cells=prof["state"]["min_cells"],
                marker_classes=tuple(prof["state"]["marker_classes"]),
            )
            de = DifferentialExpression(
                contrast=contrast,
                min_cells=prof["expression"]["min_cells"],
                method=prof["expression"]["method"],
            )
        return cls(
            demo_data=build(Demo, demo, where="demo", seed=seed),
            rna_ingest=RnaIngest(genome=rna["genome"]),  # rna.species: see rna_annotate
            rna_bam_count=RnaBamCount.from_section(rna["bam_count"], seed=seed),
            rna_quantify=RnaQuantify.from_config(rna, seed=seed),
            rna_qc=build(RnaQc, rna["qc"], where="rna.qc", seed=seed),
            rna_normalize=build(RnaNormalize, rna["normalize"], where="rna.normalize"),
            rna_integrate=build(RnaIntegrate, integrate, where="rna.integrate", seed=seed),
            rna_cluster=build(RnaCluster, rna["cluster"], where="rna.cluster", seed=seed),
            rna_annotate=build(
                RnaAnnotate,
                rna["annotate"],
                where="rna.annotate",
                files=("markers", "reference", "celltypist_model"),
                species=rna["species"],
                seed=seed,
            ),
            cyto_preprocess=CytoPreprocess(
                ingest=build(CytoIngest, cyto["ingest"], where="cyto.ingest"),
                transform=build(CytoTransform, transform, where="cyto.transform", logicle=logicle),
                clean=build(CytoClean, cyto["clean"], where="cyto.clean", files=("gating",)),
            ),
            cyto_spillover=CytoSpillover(seed=seed),
            cyto_normalize=build(
                CytoNormalize, cyto["normalize"], where="cyto.normalize", seed=seed
            ),
            cyto_cluster=build(CytoCluster, cyto["cluster"], where="cyto.cluster", seed=seed),
            cyto_annotate=build(
                CytoAnnotate,
                cyto["annotate"],
                where="cyto.annotate",
                files=("markers", "lineages"),
                seed=seed,
            ),
            profile_differential_abundance=da,
            profile_differential_state=ds,
            profile_differential_expression=de,
            profile_qc_status=build(QcStatus, prof["qc"], where="profile.qc"),
            on_sample_failure=config["on_sample_failure"],
        )
