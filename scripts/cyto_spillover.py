"""Adapter for rule cyto_spillover: the barcode channels' spillover, from the data."""

from immunoprofiler.runtime import configure

configure(log=snakemake.log[0], threads=snakemake.threads)

from immunoprofiler.pipeline import cyto_spillover  # noqa: E402

cyto_spillover(
    snakemake.input.fcs,
    snakemake.output.matrix,
    pairs=snakemake.output.pairs,
    panels=snakemake.params.panels,
    modality=snakemake.wildcards.modality,
    params=snakemake.params.step,
)
