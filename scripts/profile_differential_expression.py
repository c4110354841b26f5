"""Adapter for rule profile_differential_expression: RNA pseudobulk DE per cell type."""

from immunoprofiler.runtime import configure

configure(log=snakemake.log[0], threads=snakemake.threads)

from immunoprofiler.pipeline import profile_differential_expression  # noqa: E402

profile_differential_expression(
    snakemake.input[0],
    samples=snakemake.params.samples,
    table=snakemake.output.table,
    design=snakemake.output.design,
    figure=snakemake.output.figure,
    params=snakemake.params.de,
    threads=snakemake.threads,
)
