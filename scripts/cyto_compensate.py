"""Adapter for rule cyto_compensate: spillover compensation."""

from immunoprofiler.runtime import configure

configure(log=snakemake.log[0], threads=snakemake.threads)

from immunoprofiler.pipeline import cyto_compensate  # noqa: E402

cyto_compensate(
    snakemake.input.h5ad,
    snakemake.output[0],
    sample_id=snakemake.wildcards.sample,
    modality=snakemake.wildcards.modality,
    spillover=snakemake.input.spillover or None,
    on_failure=snakemake.params.on_failure,
)
