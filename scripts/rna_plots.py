"""Adapter for rule rna_plots: UMAP and marker dot plot."""

from immunoprofiler.runtime import configure

configure(log=snakemake.log[0], threads=snakemake.threads)

from immunoprofiler.pipeline import rna_plots  # noqa: E402

rna_plots(
    snakemake.input.annotated,
    markers=snakemake.input.markers,
    umap=snakemake.output.umap,
    dotplot=snakemake.output.dotplot,
    normalized=snakemake.input.normalized,
    umap_unintegrated=snakemake.output.umap_unintegrated,
    seed=snakemake.params.seed,
)
