"""Adapter for rule rna_quantify: one sample's FASTQ reads → raw and filtered 10x .h5."""

from immunoprofiler.runtime import configure

configure(log=snakemake.log[0], threads=snakemake.threads)

from immunoprofiler.pipeline import rna_quantify  # noqa: E402

rna_quantify(
    snakemake.input.r1,
    snakemake.input.r2,
    snakemake.input.index,
    out_raw=snakemake.output.raw,
    out_filtered=snakemake.output.filtered,
    table=snakemake.output.table,
    bam=snakemake.output.get("bam"),
    workdir=snakemake.params.workdir,
    whitelist_file=snakemake.input.get("whitelist"),
    sample_id=snakemake.wildcards.sample,
    params=snakemake.params.quantify,
    threads=snakemake.threads,
    memory_mb=snakemake.resources.mem_mb,
    on_failure=snakemake.params.on_failure,
)
