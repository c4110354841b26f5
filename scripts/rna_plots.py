"""Adapter for rule rna_plots: UMAP and marker dot plot."""

from immunoprofiler.runtime import configure

configure(log=snakemake.log[0], threads=snakemake.threads)

from immunoprofiler.pipeline import rna_plots  # noqa: E402

rna_plots(
    snakemake.input.annotated,
    umap=snakemake.output.umap,
    umap_uncorrected=snakemake.output.umap_uncorrected,
    dotplot=snakemake.output.dotplot,
    abundance=snakemake.output.abundance,
)
