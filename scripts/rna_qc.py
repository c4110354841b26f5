"""Adapter for rule rna_qc: QC metrics, outliers and doublets of one sample."""

from immunoprofiler.runtime import configure

configure(log=snakemake.log[0], threads=snakemake.threads)

from immunoprofiler.pipeline import rna_qc  # noqa: E402

rna_qc(
    snakemake.input[0],
    snakemake.output.h5ad,
    table=snakemake.output.table,
    plot=snakemake.output.plot,
    sample_id=snakemake.wildcards.sample,
    params=snakemake.params.qc,
    on_failure=snakemake.params.on_failure,
)
