"""Adapter for rule cyto_composition: composition and marker medians of one panel group."""

from immunoprofiler.runtime import configure

configure(log=snakemake.log[0], threads=snakemake.threads)

from immunoprofiler.pipeline import cyto_composition  # noqa: E402

cyto_composition(
    snakemake.input[0],
    snakemake.output.composition,
    medians=snakemake.output.medians,
    modality=snakemake.params.modality,
)
