"""Adapter for rule rna_composition: per-sample cell-type composition of the RNA cohort."""

from immunoprofiler.runtime import configure

configure(log=snakemake.log[0], threads=snakemake.threads)

from immunoprofiler.pipeline import rna_composition  # noqa: E402

rna_composition(snakemake.input[0], snakemake.output[0])
