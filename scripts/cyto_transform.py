"""Adapter for rule cyto_transform: arcsinh / logicle."""

from immunoprofiler.runtime import configure

configure(log=snakemake.log[0], threads=snakemake.threads)

from immunoprofiler.pipeline import cyto_transform  # noqa: E402

cyto_transform(
    snakemake.input[0],
    snakemake.output[0],
    sample_id=snakemake.wildcards.sample,
    modality=snakemake.wildcards.modality,
    params=snakemake.params.transform,
    on_failure=snakemake.params.on_failure,
)
