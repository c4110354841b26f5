"""Adapter for rule rna_integrate: scVI / Harmony / PCA on the HVGs.

The accelerator follows the rule's `gpu` resource: gpu=0 trains on the CPU,
gpu>=1 requires a visible CUDA device and fails at once without one. The rule's
`mem_mb` is the job's memory: scVI trains from disk when the HVG counts take more than
a third of it.
"""

from immunoprofiler.runtime import configure

configure(log=snakemake.log[0], threads=snakemake.threads)

from immunoprofiler.accelerator import select_accelerator  # noqa: E402
from immunoprofiler.pipeline import rna_integrate  # noqa: E402

rna_integrate(
    snakemake.input[0],
    snakemake.output.h5ad,
    model_dir=snakemake.output.model,
    params=snakemake.params.integrate,
    accelerator=select_accelerator(int(snakemake.resources.get("gpu", 0))),
    memory_mb=snakemake.resources.get("mem_mb"),
)
