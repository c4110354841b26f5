"""Adapter for rule rna_bam_count: aligned BAM → raw and filtered 10x .h5 matrices."""

from immunoprofiler.runtime import configure

configure(log=snakemake.log[0], threads=snakemake.threads)

from immunoprofiler.pipeline import rna_bam_count  # noqa: E402

rna_bam_count(
    snakemake.input[0],
    out_raw=snakemake.output.raw,
    out_filtered=snakemake.output.filtered,
    table=snakemake.output.table,
    sample_id=snakemake.wildcards.sample,
    params=snakemake.params.bam_count,
    threads=snakemake.threads,
    on_failure=snakemake.params.on_failure,
)
