"""Adapter for rule cyto_preprocess: one FCS file → its gated, transformed events."""

from immunoprofiler.runtime import configure

configure(log=snakemake.log[0], threads=snakemake.threads)

from immunoprofiler.pipeline import cyto_preprocess  # noqa: E402

cyto_preprocess(
    snakemake.input.fcs,
    snakemake.output.h5ad,
    panel_out=snakemake.output.panel,
    table=snakemake.output.table,
    sample_id=snakemake.wildcards.sample,
    modality=snakemake.wildcards.modality,
    metadata=snakemake.params.metadata,
    params=snakemake.params.step,
    panel=snakemake.input.panel or None,
    spillover=snakemake.input.spillover or None,
    spillover_estimated=snakemake.params.spillover_estimated,
    gating=snakemake.input.gating or None,
    on_failure=snakemake.params.on_failure,
)
