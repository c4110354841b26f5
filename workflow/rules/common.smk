# Helpers for the rules: config and sample-sheet validation, sample lookup, input
# functions and resource functions. No rules here.
import os
from pathlib import Path

import yaml
from snakemake.utils import validate

from immunoprofiler.datasets import demo_paths
from immunoprofiler.io.samples import SampleSheetError, read_sample_sheet, sample_metadata

validate(config, workflow.source_path("../schemas/config.schema.yaml"))

REPO = Path(workflow.basedir)
SAMPLE_SCHEMA = yaml.safe_load(
    open(workflow.source_path("../schemas/samples.schema.yaml"), encoding="utf-8")
)
DEMO_PATHS = demo_paths(config["demo"]["outdir"])
try:
    SAMPLES = read_sample_sheet(
        config["samples"], schema=SAMPLE_SCHEMA, pending=DEMO_PATHS.values()
    )
except SampleSheetError as err:
    raise WorkflowError(str(err)) from None


def check_contrast(contrast, sheet):
    """Stop before any job when profile.contrast names what the sheet does not have."""
    if not contrast:
        return
    problems = []
    for key in ("column", "paired_by"):
        col = contrast.get(key)
        if col and col not in sheet.columns:
            problems.append(f"{key} '{col}' is not a sheet column ({', '.join(sheet.columns)})")
    col = contrast["column"]
    if col in sheet.columns:
        values = set(sheet[col].astype(str))
        missing = [g for g in contrast["groups"] if g not in values]
        if missing:
            problems.append(f"group(s) {missing} never appear in column '{col}' ({sorted(values)})")
    if problems:
        raise WorkflowError("profile.contrast: " + "; ".join(problems))


check_contrast(config["profile"]["contrast"], SAMPLES)
RNA = SAMPLES[SAMPLES["modality"] == "rna"].set_index("sample_id", drop=False)
CYTO = SAMPLES[SAMPLES["modality"].isin(["cytof", "flow"])].set_index(
    ["modality", "sample_id"], drop=False
)
CYTO_MODALITIES = sorted(set(CYTO["modality"]))


wildcard_constraints:
    sample=r"[A-Za-z0-9][A-Za-z0-9_.-]*",
    modality=r"cytof|flow",


def all_outputs():
    """Final targets for the modalities present in the sheet."""
    out = []
    if len(RNA):
        out += [
            "results/rna/annotated.h5ad",
            "results/qc/rna_qc.tsv",
            "results/rna/figures/umap.png",
            "results/rna/figures/marker_dotplot.png",
            "results/profile/composition.tsv",
        ]
    if bam_samples():
        out.append("results/qc/bam_counts.tsv")
    for m in CYTO_MODALITIES:
        out += [
            f"results/cyto/{m}/annotated.h5ad",
            f"results/cyto/{m}/figures/metacluster_heatmap.png",
            f"results/cyto/{m}/figures/umap.png",
            f"results/cyto/{m}/figures/abundance.png",
        ]
    if CYTO_MODALITIES:
        out += [
            "results/qc/cyto_qc.tsv",
            "results/qc/cyto_batch.tsv",
            "results/profile/composition.tsv",
            "results/profile/pseudobulk/marker_medians.tsv",
        ]
    out += [
        "results/profile/composition_wide.tsv",
        "results/profile/cross_modality.tsv",
        "results/profile/qc_status.tsv",
        "results/profile/provenance.tsv",
    ]
    if len(RNA):
        out.append("results/profile/pseudobulk/rna_counts.h5ad")
    if config["profile"]["contrast"]:
        out.append("results/profile/differential_abundance.tsv")
    return list(dict.fromkeys(out))


def rna_input(wildcards):
    """Input file or folder of one RNA sample (a demo path is written by rule demo_data; a
    BAM is counted by rule rna_bam_count first)."""
    path = RNA.loc[wildcards.sample, "path"]
    if path.endswith(".bam"):
        return f"results/rna/bam_counts/{wildcards.sample}/filtered_feature_bc_matrix.h5"
    return path


def bam_input(wildcards):
    """The aligned BAM of one RNA sample."""
    path = RNA.loc[wildcards.sample, "path"]
    if not path.endswith(".bam"):
        raise WorkflowError(f"sample {wildcards.sample}: {path} is not a .bam")
    return path


def bam_samples():
    return [s for s, p in zip(RNA["sample_id"], RNA["path"]) if p.endswith(".bam")]


def bam_count_params():
    return {**config["rna"]["bam_count"], "seed": config["seed"]}


def rna_metadata(wildcards):
    """Sheet columns of one RNA sample, carried into obs."""
    return sample_metadata(SAMPLES, wildcards.sample, "rna")


def cyto_samples(modality):
    return list(CYTO.loc[modality, "sample_id"]) if modality in CYTO_MODALITIES else []


def cyto_fcs(wildcards):
    """The FCS file of one cytometry sample."""
    return CYTO.loc[(wildcards.modality, wildcards.sample), "path"]


def cyto_panel(wildcards):
    """The sample's panel TSV, if the sheet names one ([] = derive it from the header)."""
    if "panel" not in CYTO.columns:
        return []
    panel = CYTO.loc[(wildcards.modality, wildcards.sample), "panel"]
    return panel or []


def cyto_metadata(wildcards):
    """Sheet columns of one cytometry sample, carried into obs."""
    return sample_metadata(SAMPLES, wildcards.sample, wildcards.modality)


def cyto_spillover():
    return config["cyto"]["spillover"] or []


def cyto_gating():
    return config["cyto"]["clean"]["gating"] or []


def cyto_markers_table():
    """The protein marker table: config cyto.annotate.markers, else the workflow's own."""
    return config["cyto"]["annotate"]["markers"] or str(REPO / "resources" / "cyto_cell_types.tsv")


def qc_status_inputs(wildcards):
    """The QC tables of the modalities present, and the composition (unknown fractions)."""
    out = {"composition": "results/profile/composition.tsv"}
    if len(RNA):
        out["rna_qc"] = "results/qc/rna_qc.tsv"
    if CYTO_MODALITIES:
        out["cyto_qc"] = "results/qc/cyto_qc.tsv"
    return out


def annotated_outputs():
    """The final annotated file of each modality present (their uns holds the provenance)."""
    out = ["results/rna/annotated.h5ad"] if len(RNA) else []
    return out + [f"results/cyto/{m}/annotated.h5ad" for m in CYTO_MODALITIES]


def da_params():
    """The contrast of profile_differential_abundance (config profile.contrast)."""
    contrast = config["profile"]["contrast"] or {}
    return {**contrast, "transform": config["profile"]["transform"]}


def composition_tables():
    """Per-modality composition tables that make up results/profile/composition.tsv."""
    tables = ["results/rna/composition.tsv"] if len(RNA) else []
    return tables + [f"results/cyto/{m}/composition.tsv" for m in CYTO_MODALITIES]


def demo_outputs():
    """Demo inputs: folders for the matrix-folder formats, files for the others."""
    return {
        name: directory(path) if not Path(path).suffix else path
        for name, path in DEMO_PATHS.items()
    }


def demo_outdir(wildcards, output):
    """Folder of the demo cohort, derived from the rule's truth-table output."""
    return str(Path(output.truth).parent)


def rna_samples():
    return list(RNA["sample_id"])


def markers_table():
    """The RNA marker table: config rna.annotate.markers, else the workflow's own."""
    return config["rna"]["annotate"]["markers"] or str(REPO / "resources" / "rna_cell_types.tsv")


def annotation_inputs(wildcards):
    """Extra inputs of rna_annotate that depend on the method (reference / model files)."""
    ann = config["rna"]["annotate"]
    extra = {"markers": markers_table()}
    if ann["method"] == "scanvi" and ann["reference"]:
        extra["reference"] = ann["reference"]
    if ann["method"] == "celltypist" and ann["celltypist_model"]:
        extra["model"] = ann["celltypist_model"]
    return extra


def qc_params():
    return {**config["rna"]["qc"], "random_state": config["seed"]}


def integrate_params():
    return {**config["rna"]["integrate"], "seed": config["seed"]}


def cluster_params():
    return {**config["rna"]["cluster"], "seed": config["seed"]}


def annotate_params():
    ann = config["rna"]["annotate"]
    if ann["method"] == "markers":
        keys = ("min_score", "min_expression", "split_fraction")
        return {k: ann[k] for k in keys} | {"cluster_key": "leiden", "seed": config["seed"]}
    if ann["method"] == "scanvi":
        return {"max_epochs": ann["max_epochs"], "seed": config["seed"]}
    return {"cluster_key": "leiden"}


# Memory (MB) grows with the input and with each retry (--retries), runtime in minutes.
def mem_per_sample(wildcards, input, attempt):
    return int((1500 + 12 * input.size_mb) * attempt)


def mem_cohort(wildcards, input, attempt):
    return int((2000 + 3 * input.size_mb) * attempt)


def mem_embedding(wildcards, input, attempt):
    return int((3000 + 4 * input.size_mb) * attempt)


def mem_small(wildcards, attempt):
    return 1000 * attempt
