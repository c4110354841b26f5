# Helpers for the rules: config and sample-sheet validation, the step parameters, sample
# lookup, input functions and resource functions. No rules here.
import os
from pathlib import Path

import yaml
from snakemake.utils import validate

from immunoprofiler.datasets import demo_paths, is_demo_cohort
from immunoprofiler.io.samples import (
    SampleSheetError,
    locate_sheet,
    metadata_table,
    panel_groups,
    read_sample_sheet,
    sample_metadata,
)
from immunoprofiler.params import ConfigError, StepParams, unknown_keys

CONFIG_SCHEMA = yaml.safe_load(
    open(workflow.source_path("../schemas/config.schema.yaml"), encoding="utf-8")
)
# a mistyped key would otherwise fall back to its default without a word
if TYPOS := unknown_keys(config, CONFIG_SCHEMA):
    raise WorkflowError("\n".join(TYPOS))
validate(config, workflow.source_path("../schemas/config.schema.yaml"))

REPO = Path(workflow.basedir)
SAMPLE_SCHEMA = yaml.safe_load(
    open(workflow.source_path("../schemas/samples.schema.yaml"), encoding="utf-8")
)
DEMO_PATHS = demo_paths(config["demo"]["outdir"])
# The one place the step parameters are built (typed, every key used; defaults: the schema)
# and the one place the sample sheet is read and validated (contrast included).
# Where snakemake was started (differs from the working directory with --directory): a
# relative sheet path the user typed there is found; jobs started by this run inherit it.
START_DIR = os.environ.setdefault("IMMUNOPROFILER_START_DIR", os.environ.get("PWD", os.getcwd()))
try:
    SHEET = locate_sheet(config["samples"], start_dir=START_DIR)
    SAMPLES = read_sample_sheet(
        SHEET,
        schema=SAMPLE_SCHEMA,
        pending=DEMO_PATHS.values(),
        contrast=config["profile"]["contrast"],
    )
    RNA = SAMPLES[SAMPLES["modality"] == "rna"].set_index("sample_id", drop=False)
    # a sample's input: its path, or its first R1 file (FASTQ given as fastq_1 / fastq_2)
    _RNA_INPUTS = [p or r1.split(",")[0] for p, r1 in zip(RNA["path"], RNA["fastq_1"])]
    PARAMS = StepParams.from_config(
        config, demo_cohort=is_demo_cohort(_RNA_INPUTS, DEMO_PATHS.values())
    )
except (ConfigError, SampleSheetError) as err:
    raise WorkflowError(str(err)) from None
# scVI integration needs memory and hours (and a GPU on SLURM); Harmony / PCA a minute
SCVI_INTEGRATION = PARAMS.rna_integrate.method == "scvi"
# Cytometry files are analysed per panel group (the files' type/state markers, or the sheet's
# panel_group column; read from the FCS headers, no event data). {group} of the cohort rules
# is the modality, or <modality>-<panel group> when a modality's files have several panels.
_GROUPS = panel_groups(
    SAMPLES, merge=config["cyto"]["merge_panels"] == "shared", pending=DEMO_PATHS.values()
)
CYTO = SAMPLES.loc[_GROUPS.index].assign(panel_group=_GROUPS)
_N_GROUPS = CYTO.groupby("modality")["panel_group"].nunique()
CYTO["group"] = [
    m if _N_GROUPS[m] == 1 else f"{m}-{g}" for m, g in zip(CYTO["modality"], CYTO["panel_group"])
]
CYTO = CYTO.set_index(["modality", "sample_id"], drop=False)
CYTO_MODALITIES = sorted(set(CYTO["modality"]))
CYTO_GROUPS = sorted(set(CYTO["group"]))
# STARsolo needs STAR on the PATH (unless conda provides it: workflow/envs/star.yaml): say so
# and how to install it before any job runs
if (
    (RNA["fastq_1"] != "").any()
    and config["rna"]["quantifier"] == "starsolo"
    and not workflow.deployment_settings.deployment_method
):
    from immunoprofiler.quant.starsolo import check_star

    try:
        check_star()
    except RuntimeError as err:
        raise WorkflowError(str(err)) from None
# where rna_reference builds the FASTQ samples' index (one per quantifier and features)
REFERENCE_INDEX = f"results/rna/reference/{config['rna']['quantifier']}_{config['rna']['features']}"


wildcard_constraints:
    sample=r"[A-Za-z0-9][A-Za-z0-9_.-]*",
    modality=r"cytof|flow",
    group=r"(cytof|flow)(-[A-Za-z0-9_]+)?",


def all_outputs():
    """Final targets for the modalities present in the sheet."""
    out = []
    if len(RNA):
        out += [
            "results/rna/annotated.h5ad",
            "results/qc/rna_qc.tsv",
            "results/rna/figures/umap.png",
            "results/rna/figures/marker_dotplot.png",
            "results/rna/figures/abundance.png",
            "results/profile/pseudobulk/rna_counts.h5ad",
        ]
    if bam_samples():
        out.append("results/qc/bam_counts.tsv")
    if fastq_samples():
        out.append("results/qc/starsolo.tsv")
    for g in CYTO_GROUPS:
        out += [
            f"results/cyto/{g}/annotated.h5ad",
            f"results/cyto/{g}/figures/metacluster_heatmap.png",
            f"results/cyto/{g}/figures/umap.png",
            f"results/cyto/{g}/figures/abundance.png",
        ]
    if CYTO_MODALITIES:
        out += [
            "results/qc/cyto_qc.tsv",
            "results/qc/cyto_batch.tsv",
            "results/profile/pseudobulk/marker_medians.tsv",
        ]
    out += [
        "results/profile/composition.tsv",
        "results/profile/composition_wide.tsv",
        "results/profile/cross_modality.tsv",
        "results/profile/qc_status.tsv",
        "results/profile/provenance.tsv",
    ]
    if PARAMS.profile_differential_abundance:
        out.append("results/profile/differential_abundance.tsv")
        if CYTO_MODALITIES:
            out.append("results/profile/differential_state.tsv")
        if rna_samples():
            out.append("results/profile/differential_expression.tsv")
    return out


# --- the sample sheet -------------------------------------------------------------------


def sample_records():
    """The validated sheet's descriptive columns, one record per sample and modality (what
    the cohort steps need of the sheet; passed as a parameter, never re-read)."""
    return metadata_table(SAMPLES).to_dict("records")


def rna_samples():
    return list(RNA["sample_id"])


def bam_samples():
    return [s for s, p in zip(RNA["sample_id"], RNA["path"]) if p.endswith(".bam")]


def fastq_samples():
    """RNA samples given as FASTQ reads (a FASTQ folder, or fastq_1 / fastq_2)."""
    return [s for s, r1 in zip(RNA["sample_id"], RNA["fastq_1"]) if r1]


def cyto_samples(modality):
    return list(CYTO.loc[modality, "sample_id"]) if modality in CYTO_MODALITIES else []


def metadata(wildcards):
    """Sheet columns of one sample (RNA, or cytometry with the modality wildcard), for obs."""
    return sample_metadata(SAMPLES, wildcards.sample, wildcards.get("modality", "rna"))


# --- input functions --------------------------------------------------------------------


def rna_input(wildcards):
    """Input file or folder of one RNA sample (a demo path is written by rule demo_data; a
    BAM is counted by rule rna_bam_count first)."""
    if RNA.loc[wildcards.sample, "fastq_1"]:
        return rules.rna_quantify.output.filtered.format(sample=wildcards.sample)
    path = RNA.loc[wildcards.sample, "path"]
    if path.endswith(".bam"):
        return rules.rna_bam_count.output.filtered.format(sample=wildcards.sample)
    return path


def fastq_input(wildcards):
    """The R1 and R2 files of one FASTQ sample, the reference index and the barcode
    whitelist when config names a file."""
    row = RNA.loc[wildcards.sample]
    out = {
        "r1": row["fastq_1"].split(","),
        "r2": row["fastq_2"].split(","),
        "index": reference_index(),
    }
    if config["rna"]["whitelist"] not in ("kit", "none"):
        out["whitelist"] = config["rna"]["whitelist"]
    return out


def reference_index():
    """The FASTQ samples' index: config rna.reference.index, else what rna_reference
    builds."""
    return config["rna"]["reference"]["index"] or REFERENCE_INDEX


def reference_input(wildcards):
    """The genome FASTA and GTF rna_reference indexes (config rna.reference)."""
    ref = config["rna"]["reference"]
    if not (ref["fasta"] or ref["gtf"]) and is_demo_cohort(
        [RNA.loc[s, "fastq_1"].split(",")[0] for s in fastq_samples()], DEMO_PATHS.values()
    ):  # the demo genome stands in only for the demo's own FASTQ sample
        return {"fasta": DEMO_PATHS["genome_fasta"], "gtf": DEMO_PATHS["genome_gtf"]}
    missing = [k for k in ("fasta", "gtf") if not ref[k]]
    if missing:
        raise WorkflowError(
            f"the sheet has FASTQ samples ({', '.join(fastq_samples())}): config "
            "rna.reference needs fasta and gtf (or a prebuilt index)"
        )
    return {"fasta": ref["fasta"], "gtf": ref["gtf"]}


def bam_input(wildcards):
    """The aligned BAM of one RNA sample."""
    path = RNA.loc[wildcards.sample, "path"]
    if not path.endswith(".bam"):
        raise WorkflowError(f"sample {wildcards.sample}: {path} is not a .bam")
    return path


def cyto_fcs(wildcards):
    """The FCS file of one cytometry sample."""
    return CYTO.loc[(wildcards.modality, wildcards.sample), "path"]


def cyto_panel(wildcards):
    """The sample's panel TSV, if the sheet names one ([] = derive it from the header)."""
    return cyto_panel_of(wildcards.modality, wildcards.sample) or []


def cyto_panel_of(modality, sample):
    """The panel TSV the sheet names for one cytometry sample ("" = none)."""
    return CYTO.loc[(modality, sample), "panel"] if "panel" in CYTO.columns else ""


def modality_panels(modality):
    """The panel TSV of each cytometry sample of one modality ("" = none), in sheet order."""
    return [cyto_panel_of(modality, s) for s in cyto_samples(modality)]


def cyto_spillover_input(wildcards):
    """The spillover matrix of one file: config cyto.spillover (a file), or with
    ``barcodes`` the one rule cyto_spillover estimates for the CyTOF files; [] = the file's
    own (flow) or none."""
    value = config["cyto"]["spillover"]
    if value != "barcodes":
        return optional_file(value)
    if wildcards.modality != "cytof":
        return []
    return rules.cyto_spillover.output.matrix.format(modality=wildcards.modality)


def spill_pair_modalities():
    """The modalities whose barcode spillover rule cyto_spillover estimates (CyTOF, with
    cyto.spillover: barcodes): their pair tables note the differential-state results."""
    if config["cyto"]["spillover"] != "barcodes":
        return []
    return [m for m in CYTO_MODALITIES if m == "cytof"]


def cyto_group(group):
    """The modality, panel group name and samples of one {group}."""
    from types import SimpleNamespace

    rows = CYTO[CYTO["group"] == group]
    if rows.empty:
        raise WorkflowError(f"no cytometry panel group '{group}' (groups: {CYTO_GROUPS})")
    return SimpleNamespace(
        modality=rows["modality"].iloc[0],
        name=rows["panel_group"].iloc[0],
        samples=list(rows["sample_id"]),
    )


def cyto_files(step):
    """Input function: the per-file outputs of ``step`` (a rule's output pattern) for every
    file of the panel group."""

    def files(wildcards):
        g = cyto_group(wildcards.group)
        return expand(step, modality=g.modality, sample=g.samples)

    return files


def optional_file(value):
    """A config key naming an optional file: the file, or no input."""
    return value or []


def rna_markers():
    """The RNA marker table: config rna.annotate.markers, else the workflow's own."""
    return config["rna"]["annotate"]["markers"] or str(REPO / "resources" / "rna_cell_types.tsv")


def cyto_markers():
    """The protein marker table: config cyto.annotate.markers, else the workflow's own."""
    return config["cyto"]["annotate"]["markers"] or str(REPO / "resources" / "cyto_cell_types.tsv")


def cyto_lineages():
    """The lineage fallback table: config cyto.annotate.lineages, else the workflow's own."""
    return config["cyto"]["annotate"]["lineages"] or str(REPO / "resources" / "cyto_lineages.tsv")


def annotation_inputs(wildcards):
    """Extra inputs of rna_annotate that depend on the method (reference / model files)."""
    ann = config["rna"]["annotate"]
    extra = {"markers": rna_markers()}
    if ann["method"] == "scanvi" and ann["reference"]:
        extra["reference"] = ann["reference"]
    if ann["method"] == "celltypist" and ann["celltypist_model"]:
        extra["model"] = ann["celltypist_model"]
    return extra


def qc_status_inputs(wildcards):
    """The QC tables of the modalities present, and the composition (unknown fractions)."""
    out = {"composition": rules.profile_composition.output[0]}
    if len(RNA):
        out["rna_qc"] = rules.rna_qc_summary.output[0]
    if CYTO_MODALITIES:
        out["cyto_qc"] = rules.cyto_qc_summary.output[0]
    return out


def annotated_outputs():
    """The final annotated file of each modality present (their uns holds the provenance)."""
    out = ["results/rna/annotated.h5ad"] if len(RNA) else []
    return out + [f"results/cyto/{g}/annotated.h5ad" for g in CYTO_GROUPS]


def composition_tables():
    """Per-modality composition tables that make up results/profile/composition.tsv."""
    tables = ["results/rna/composition.tsv"] if len(RNA) else []
    return tables + [f"results/cyto/{g}/composition.tsv" for g in CYTO_GROUPS]


def demo_fastq_used():
    """Whether the sheet reads the demo's FASTQ sample (else its reads and genome are not
    written: the other demo files are the same either way)."""
    demo = {os.path.abspath(p) for p in DEMO_PATHS.values()}
    return any(
        os.path.abspath(f) in demo
        for s in fastq_samples()
        for f in RNA.loc[s, "fastq_1"].split(",")
    )


def demo_outputs():
    """Demo inputs: folders for the matrix-folder formats, files for the others (the FASTQ
    sample's reads and genome only when the sheet reads them)."""
    reads = ("fastq_", "genome_")
    return {
        name: directory(path) if not Path(path).suffix else path
        for name, path in DEMO_PATHS.items()
        if demo_fastq_used() or not name.startswith(reads)
    }


def demo_outdir(wildcards, output):
    """Folder of the demo cohort, derived from the rule's truth-table output."""
    return str(Path(output.truth).parent)


# --- resources: memory (MB) and runtime (minutes) follow the inputs' size and grow with each
# retry (an OOM-killed or timed-out job gets more). Constants per rule from the benchmarks
# (README "Resources"): a per-sample step holds its file several times over; a cytometry
# cohort step maps over its files and needs a base plus a few bytes per event (10M events:
# every cohort step under 750 MB, bench/results/cyto_10M_2cores_*.json), not its inputs' size.


def input_mb(input, only=()):
    """MB of the job's input files, or only of those named ``only`` (a step that reads a
    few columns of a large file: its size says nothing of the job's work)."""
    if not only:
        return input.size_mb
    named = {str(getattr(input, name)) for name in only}
    return sum(mb for f, mb in zip(input, input.size_files_mb) if str(f) in named)


def mem(base, per_input_mb=0.0, only=()):
    """mem_mb: ``base`` MB plus ``per_input_mb`` MB per MB of input (:func:`input_mb`),
    times the attempt."""

    def mem_mb(wildcards, input, attempt):
        return int((base + per_input_mb * input_mb(input, only)) * attempt)

    return mem_mb


def runtime(base, per_input_gb=0.0, only=()):
    """runtime: ``base`` minutes plus ``per_input_gb`` minutes per GB of input
    (:func:`input_mb`), times the attempt."""

    def minutes(wildcards, input, attempt):
        return int((base + per_input_gb * input_mb(input, only) / 1024) * attempt)

    return minutes


def mem_reference(wildcards, input, attempt):
    """Building an index: STAR ~11 bytes per genome base (a human genome: ~32 GB, as STAR's
    manual says), kallisto ~4 (gzip-compressed FASTA: ~3.5x its size)."""
    fasta = str(getattr(input, "fasta", ""))
    mb = input.size_files_mb[0] * (3.5 if fasta.endswith(".gz") else 1.0)
    per_base = 11 if PARAMS.rna_quantify.quantifier == "starsolo" else 4
    return int(max(2000, per_base * mb) * attempt)


def mem_quantify(wildcards, input, attempt):
    """Counting: the index held in memory plus 2 GB (sorting, the matrices)."""
    index = Path(str(getattr(input, "index", "")))
    size = sum(f.stat().st_size for f in index.rglob("*") if f.is_file()) if index.is_dir() else 0
    return int((2500 + 1.2 * size / 2**20) * attempt)


def mem_ingest(wildcards, input, attempt):
    """Reading one sample: the reader's measured peak per stored count entry, the entries
    read from the input's header (:func:`immunoprofiler.io.sizing.read_memory_mb`); where
    that header cannot be read, ``mem(1500, 12)`` of the input's size (the job then fails,
    naming the file; an input still to be made: Snakemake asks again when it exists)."""
    from immunoprofiler.io.sizing import read_memory_mb

    try:
        need = read_memory_mb(input[0])
    except (OSError, KeyError, ValueError, IndexError):
        return mem(1500, 12)(wildcards, input, attempt)
    return int(max(1000, need) * attempt)


def mem_bam(wildcards, attempt):
    return 2500 * attempt


def mem_small(wildcards, attempt):
    return 1000 * attempt


def config_used():
    """The configuration as the run used it: schema defaults filled in, the sheet's absolute
    path."""
    return {**config, "samples": str(SHEET)}


def report_excluded():
    """The run's last message: every sample left out of the cohort, with step, file and cause
    (from results/profile/qc_status.tsv, when this run wrote it)."""
    import pandas as pd
    from snakemake.logging import logger

    path = Path("results/profile/qc_status.tsv")
    if not path.is_file():
        return
    status = pd.read_csv(path, sep="\t")
    if "excluded" not in status:
        return
    excluded = status[status["excluded"].astype(bool)]
    if len(excluded):
        lines = [f"  {r.modality} {r.sample_id}: {r.reasons}" for r in excluded.itertuples()]
        logger.warning(
            f"{len(excluded)} sample(s) excluded from the cohort profile "
            f"(results/profile/qc_status.tsv):\n" + "\n".join(lines)
        )


def cancel_left_over_slurm_jobs():
    """On exit of the main Snakemake process, cancel this run's Slurm jobs still queued or
    running (none after a normal end; those of an interrupted run).

    The Slurm plugin cancels the jobs it holds as active when Snakemake is interrupted, but
    the executor interface empties that list while it checks the jobs' status (sacct can take
    seconds on a busy controller), so a Ctrl-C in that window cancelled nothing and left the
    whole run queued (seen in CI). Every job of a run carries the run's id as its Slurm job
    name ("SLURM run ID: ..." in the log), so ``scancel --name`` reaches all of them."""
    import subprocess

    executor = getattr(workflow.scheduler, "_executor", None)
    run_id = getattr(executor, "run_uuid", None)
    if run_id is None or workflow.remote_execution_settings.immediate_submit:
        return  # not a Slurm run, or its jobs are meant to outlive Snakemake
    try:
        subprocess.run(["scancel", "--name", run_id], capture_output=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        print(f"could not cancel the Slurm jobs of run {run_id}: {e}; scancel --name {run_id}")


if workflow.is_main_process:
    import atexit

    atexit.register(cancel_left_over_slurm_jobs)
