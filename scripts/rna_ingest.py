"""Adapter for rule rna_ingest: one sample's counts into a per-sample .h5ad."""

from immunoprofiler.runtime import configure

configure(log=snakemake.log[0], threads=snakemake.threads)

from immunoprofiler.pipeline import rna_ingest  # noqa: E402

rna_ingest(
    snakemake.input[0],
    snakemake.output[0],
    sample_id=snakemake.wildcards.sample,
    metadata=snakemake.params.metadata,
    params=snakemake.params.ingest,
    on_failure=snakemake.params.on_failure,
)
