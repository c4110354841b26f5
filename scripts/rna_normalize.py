"""Adapter for rule rna_normalize: cohort shifted-log normalisation and batch-aware HVGs."""

from immunoprofiler.runtime import configure

configure(log=snakemake.log[0], threads=snakemake.threads)

from immunoprofiler.pipeline import rna_normalize  # noqa: E402

rna_normalize(
    snakemake.input,
    snakemake.output.h5ad,
    out_hvg=snakemake.output.hvg,
    params=snakemake.params.normalize,
)
