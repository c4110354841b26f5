"""Adapter for rule rna_cluster: neighbours, Leiden and UMAP."""

from immunoprofiler.runtime import configure

configure(log=snakemake.log[0], threads=snakemake.threads)

from immunoprofiler.pipeline import rna_cluster  # noqa: E402

rna_cluster(
    snakemake.input[0],
    snakemake.output[0],
    params=snakemake.params.cluster,
    threads=snakemake.threads,
)
