"""Adapter for rule profile_composition: every modality's composition in one table."""

from immunoprofiler.runtime import configure

configure(log=snakemake.log[0], threads=snakemake.threads)

from immunoprofiler.pipeline import concat_tables  # noqa: E402

concat_tables(snakemake.input, snakemake.output[0])
