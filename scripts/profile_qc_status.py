"""Adapter for rule profile_qc_status: per sample and modality, passed QC or why not."""

from immunoprofiler.runtime import configure

configure(log=snakemake.log[0], threads=snakemake.threads)

from immunoprofiler.pipeline import profile_qc_status  # noqa: E402

profile_qc_status(
    snakemake.input.composition,
    out=snakemake.output.table,
    figure=snakemake.output.figure,
    rna_qc=snakemake.input.get("rna_qc"),
    cyto_qc=snakemake.input.get("cyto_qc"),
    params=snakemake.params.qc_status,
)
