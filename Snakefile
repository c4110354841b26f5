# immunoprofiler: raw scRNA-seq / cytometry files -> annotated immune profile per sample.
# Rules declare (workflow/rules), scripts/ adapt, src/immunoprofiler computes.
from pathlib import Path

from snakemake.utils import min_version

min_version("9.0")


# The demo's science settings; a run in another --directory takes every default
# from workflow/schemas/config.schema.yaml and needs only --config samples=SHEET.
if Path("config/config.yaml").exists():

    configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/demo.smk"
include: "workflow/rules/rna.smk"
include: "workflow/rules/cyto.smk"
include: "workflow/rules/profile.smk"


rule all:
    default_target: True
    input:
        all_outputs(),


onsuccess:
    report_excluded()
