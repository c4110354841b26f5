"""Adapter for rule rna_pseudobulk: one sample's counts summed per cell type."""

from immunoprofiler.runtime import configure

configure(log=snakemake.log[0], threads=snakemake.threads)

from immunoprofiler.pipeline import rna_pseudobulk  # noqa: E402

rna_pseudobulk(
    snakemake.input.qc,
    snakemake.input.annotated,
    snakemake.output[0],
    metadata=snakemake.params.metadata,
)
