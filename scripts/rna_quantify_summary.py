"""Adapter for rule rna_quantify_summary: per-sample FASTQ counting rows into one table."""

from immunoprofiler.runtime import configure

configure(log=snakemake.log[0], threads=snakemake.threads)

from immunoprofiler.pipeline import concat_tables  # noqa: E402

concat_tables(snakemake.input, snakemake.output[0])
