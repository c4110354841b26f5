"""Adapter for rule cyto_plots: metacluster heatmap, UMAP, abundance bars."""

from immunoprofiler.runtime import configure

configure(log=snakemake.log[0], threads=snakemake.threads)

from immunoprofiler.pipeline import cyto_plots  # noqa: E402

cyto_plots(
    snakemake.input[0],
    heatmap=snakemake.output.heatmap,
    umap=snakemake.output.umap,
    umap_uncorrected=snakemake.output.umap_uncorrected,
    abundance=snakemake.output.abundance,
)
