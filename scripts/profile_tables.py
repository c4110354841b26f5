"""Adapter for rule profile_tables: wide composition tables, cross-modality and cross-panel
concordance."""

from immunoprofiler.runtime import configure

configure(log=snakemake.log[0], threads=snakemake.threads)

from immunoprofiler.pipeline import profile_tables  # noqa: E402

profile_tables(
    snakemake.input[0],
    samples=snakemake.params.samples,
    wide=snakemake.output.wide,
    lineage_wide=snakemake.output.lineage_wide,
    cross=snakemake.output.cross,
    scatter=snakemake.output.scatter,
    bars=snakemake.output.bars,
    cross_panel=snakemake.output.cross_panel,
    panel_scatter=snakemake.output.panel_scatter,
)
