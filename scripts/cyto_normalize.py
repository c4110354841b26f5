"""Adapter for rule cyto_normalize: batch normalisation of one panel group's files.

The accelerator (CytoVI) follows the rule's `gpu` resource, as in rna_integrate: gpu>=1
requires a visible CUDA device and fails at once without one.
"""

from immunoprofiler.runtime import configure

configure(log=snakemake.log[0], threads=snakemake.threads)

from immunoprofiler.accelerator import select_accelerator  # noqa: E402
from immunoprofiler.pipeline import cyto_normalize  # noqa: E402

cyto_normalize(
    snakemake.input,
    snakemake.output.h5ad,
    table=snakemake.output.table,
    model_out=snakemake.output.model,
    params=snakemake.params.normalize,
    group=snakemake.params.group,
    accelerator=select_accelerator(int(snakemake.resources.get("gpu", 0))),
)
