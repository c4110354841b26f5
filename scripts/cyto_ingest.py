"""Adapter for rule cyto_ingest: FCS file → per-sample .h5ad with its panel."""

from immunoprofiler.runtime import configure

configure(log=snakemake.log[0], threads=snakemake.threads)

from immunoprofiler.pipeline import cyto_ingest  # noqa: E402

cyto_ingest(
    snakemake.input.fcs,
    snakemake.output.h5ad,
    panel_out=snakemake.output.panel,
    sample_id=snakemake.wildcards.sample,
    modality=snakemake.wildcards.modality,
    metadata=snakemake.params.metadata,
    panel=snakemake.input.panel or None,
    params=snakemake.params.step,
    on_failure=snakemake.params.on_failure,
)
