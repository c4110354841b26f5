"""Adapter for rule demo_data: write the simulated demo cohort."""

from immunoprofiler.runtime import configure

configure(log=snakemake.log[0], threads=snakemake.threads)

from immunoprofiler.datasets import write_demo  # noqa: E402

demo = snakemake.params.demo
write_demo(
    snakemake.params.outdir,
    n_cells=demo.n_cells,
    n_events=demo.n_events,
    seed=demo.seed,
    fastq=snakemake.params.fastq,
)
