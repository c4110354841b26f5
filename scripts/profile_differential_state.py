"""Adapter for rule profile_differential_state: cytometry state markers between two groups."""

from immunoprofiler.runtime import configure

configure(log=snakemake.log[0], threads=snakemake.threads)

from immunoprofiler.pipeline import profile_differential_state  # noqa: E402

profile_differential_state(
    snakemake.input.medians,
    snakemake.input.composition,
    samples=snakemake.params.samples,
    table=snakemake.output.table,
    heatmap=snakemake.output.heatmap,
    volcano=snakemake.output.volcano,
    params=snakemake.params.ds,
    spill_pairs=dict(zip(snakemake.params.spill_modalities, snakemake.input.spill, strict=True)),
)
