"""Adapter for rule rna_reference: genome FASTA + GTF → the quantifier's index."""

from immunoprofiler.runtime import configure

configure(log=snakemake.log[0], threads=snakemake.threads)

from immunoprofiler.pipeline import rna_reference  # noqa: E402

rna_reference(
    snakemake.input.fasta,
    snakemake.input.gtf,
    out=snakemake.output[0],
    params=snakemake.params.quantify,
    threads=snakemake.threads,
    memory_mb=snakemake.resources.mem_mb,
)
