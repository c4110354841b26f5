"""Adapter for rule cyto_normalize: batch normalisation of one modality's cohort."""

from immunoprofiler.runtime import configure

configure(log=snakemake.log[0], threads=snakemake.threads)

from immunoprofiler.pipeline import cyto_normalize  # noqa: E402

params = dict(snakemake.params.normalize)
cyto_normalize(
    snakemake.input,
    snakemake.output.h5ad,
    table=snakemake.output.table,
    model_out=snakemake.output.model,
    method=params.pop("method"),
    reference_column=params.pop("reference_column"),
    params=params,
    seed=snakemake.params.seed,
)
