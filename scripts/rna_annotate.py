"""Adapter for rule rna_annotate: cell types, ontology ids and lineages per cell."""

from immunoprofiler.runtime import configure

configure(log=snakemake.log[0], threads=snakemake.threads)

from immunoprofiler.accelerator import select_accelerator  # noqa: E402
from immunoprofiler.pipeline import rna_annotate  # noqa: E402

rna_annotate(
    snakemake.input.clustered,
    snakemake.input.normalized,
    snakemake.output[0],
    integrated=snakemake.input.integrated,
    markers=snakemake.input.markers,
    params=snakemake.params.annotate,
    reference=snakemake.input.get("reference"),
    celltypist_model=snakemake.input.get("model"),
    accelerator=select_accelerator(int(snakemake.resources.get("gpu", 0))),
)
