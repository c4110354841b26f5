"""Adapter for rule cyto_clean: live single cells, by data-driven gates or a gating file."""

from immunoprofiler.runtime import configure

configure(log=snakemake.log[0], threads=snakemake.threads)

from immunoprofiler.pipeline import cyto_clean  # noqa: E402

cyto_clean(
    snakemake.input.h5ad,
    snakemake.output.h5ad,
    table=snakemake.output.table,
    sample_id=snakemake.wildcards.sample,
    modality=snakemake.wildcards.modality,
    params=snakemake.params.clean,
    fcs_path=snakemake.input.fcs,
    gating=snakemake.input.gating or None,
    on_failure=snakemake.params.on_failure,
)
