"""The small configurations in .test/: each single-modality config plans only its own chain.
(The whole demo and the failing batch run end to end in test_demo_*.py / test_failures.py; a
cytometry cohort of several panels runs end to end in test_multipanel_profile.py.)"""

from __future__ import annotations

import re

import pytest

from tests.conftest import make_workdir

from .conftest import run_snakemake

pytestmark = pytest.mark.slow

CHAINS = {
    "rna": ("rna_ingest", "rna_qc", "rna_normalize", "rna_integrate", "rna_annotate"),
    "cytof": ("cyto_preprocess", "cyto_normalize", "cyto_cluster", "cyto_annotate"),
    "flow": ("cyto_preprocess", "cyto_normalize", "cyto_cluster", "cyto_annotate"),
}


def planned_jobs(output: str) -> dict[str, int]:
    """Rule → job count from the 'Job stats' table of a dry run."""
    table = output.split("Job stats:", 1)[1].split("total", 1)[0]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, flags=re.M)}


@pytest.mark.parametrize("name", ["rna", "cytof", "flow"])
def test_single_modality_config_plans_only_its_chain(name, tmp_path):
    work = make_workdir(tmp_path, name)
    proc = run_snakemake(work, "-n")
    jobs = planned_jobs(proc.stdout + proc.stderr)
    for rule in CHAINS[name]:
        per_sample = rule.endswith(("ingest", "_qc", "preprocess"))
        assert jobs.get(rule) == (4 if per_sample else 1), (rule, jobs)
    others = {r for m, rules in CHAINS.items() if m != name for r in rules} - set(CHAINS[name])
    assert not others & set(jobs), jobs
    assert "profile_differential_abundance" not in jobs  # no contrast in these configs


@pytest.mark.parametrize(("name", "estimates"), [("cytof", 1), ("flow", 0)])
def test_barcode_spillover_is_estimated_once_for_cytof_only(name, estimates, tmp_path):
    """``cyto.spillover: barcodes``: one cyto_spillover job before the CyTOF files'
    preprocessing; flow files keep their own matrix."""
    work = make_workdir(tmp_path, name)
    proc = run_snakemake(work, "-n", config={"cyto": {"spillover": "barcodes"}})
    jobs = planned_jobs(proc.stdout + proc.stderr)
    assert jobs.get("cyto_spillover", 0) == estimates, jobs
    assert jobs["cyto_preprocess"] == 4
