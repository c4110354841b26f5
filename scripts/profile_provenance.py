"""Adapter for rule profile_provenance: versions, parameters, checksums and the config used."""

from immunoprofiler.runtime import configure

configure(log=snakemake.log[0], threads=snakemake.threads)

from immunoprofiler.pipeline import profile_provenance  # noqa: E402

profile_provenance(
    snakemake.input.annotated,
    table=snakemake.output.table,
    config=snakemake.params.config,
    config_out=snakemake.output.config,
    lock=snakemake.input.lock,
    environment=snakemake.output.environment,
)
