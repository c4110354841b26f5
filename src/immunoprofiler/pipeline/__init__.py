"""One function per workflow rule: read inputs, call the science, write outputs.

These are what ``scripts/<rule>.py`` call; they take plain paths and parameters,
never the Snakemake object, so every step runs and is tested without Snakemake.
"""

from .common import concat_tables, save_figure
from .cyto import (
    cyto_annotate,
    cyto_cluster,
    cyto_composition,
    cyto_normalize,
    cyto_plots,
    cyto_preprocess,
    cyto_spillover,
)
from .profile import (
    profile_differential_abundance,
    profile_differential_expression,
    profile_differential_state,
    profile_provenance,
    profile_pseudobulk,
    profile_qc_status,
    profile_tables,
    rna_pseudobulk,
)
from .rna import (
    rna_annotate,
    rna_bam_count,
    rna_cluster,
    rna_composition,
    rna_ingest,
    rna_integrate,
    rna_normalize,
    rna_plots,
    rna_qc,
    rna_quantify,
    rna_reference,
)

__all__ = [
    "concat_tables",
    "cyto_annotate",
    "cyto_cluster",
    "cyto_composition",
    "cyto_normalize",
    "cyto_plots",
    "cyto_preprocess",
    "cyto_spillover",
    "profile_differential_abundance",
    "profile_differential_expression",
    "profile_differential_state",
    "profile_provenance",
    "profile_pseudobulk",
    "profile_qc_status",
    "profile_tables",
    "rna_annotate",
    "rna_bam_count",
    "rna_cluster",
    "rna_composition",
    "rna_ingest",
    "rna_integrate",
    "rna_normalize",
    "rna_plots",
    "rna_pseudobulk",
    "rna_qc",
    "rna_quantify",
    "rna_reference",
    "save_figure",
]
