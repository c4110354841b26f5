"""Adapter for rule cyto_annotate: metaclusters → cell types."""

from immunoprofiler.runtime import configure

configure(log=snakemake.log[0], threads=snakemake.threads)

from immunoprofiler.pipeline import cyto_annotate  # noqa: E402

cyto_annotate(
    snakemake.input.clustered,
    snakemake.input.normalized,
    snakemake.output[0],
    markers=snakemake.input.markers,
    lineages=snakemake.input.lineages,
    params=snakemake.params.annotate,
)
