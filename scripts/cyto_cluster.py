"""Adapter for rule cyto_cluster: FlowSOM and UMAP."""

from immunoprofiler.runtime import configure

configure(log=snakemake.log[0], threads=snakemake.threads)

from immunoprofiler.pipeline import cyto_cluster  # noqa: E402

cyto_cluster(
    snakemake.input[0],
    snakemake.output[0],
    params=snakemake.params.cluster,
)
