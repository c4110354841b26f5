"""Adapter for rule profile_pseudobulk: every sample's pseudobulk profiles in one file."""

from immunoprofiler.runtime import configure

configure(log=snakemake.log[0], threads=snakemake.threads)

from immunoprofiler.pipeline import profile_pseudobulk  # noqa: E402

profile_pseudobulk(snakemake.input, counts=snakemake.output.counts, cells=snakemake.output.cells)
