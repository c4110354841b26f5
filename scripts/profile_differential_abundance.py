"""Adapter for rule profile_differential_abundance: cell-type abundance between two groups."""

from immunoprofiler.runtime import configure

configure(log=snakemake.log[0], threads=snakemake.threads)

from immunoprofiler.pipeline import profile_differential_abundance  # noqa: E402

profile_differential_abundance(
    snakemake.input[0],
    samples=snakemake.params.samples,
    table=snakemake.output.table,
    figure=snakemake.output.figure,
    params=snakemake.params.da,
)
