"""The small configurations in .test/: each single-modality config plans only its own chain,
and one of them (flow) runs end to end into a cohort profile of one modality."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from tests.conftest import make_workdir

from .conftest import run_snakemake

pytestmark = pytest.mark.slow

CHAINS = {
    "rna": ("rna_ingest", "rna_qc", "rna_normalize", "rna_integrate", "rna_annotate"),
    "cytof": ("cyto_ingest", "cyto_clean", "cyto_normalize", "cyto_cluster", "cyto_annotate"),
    "flow": ("cyto_ingest", "cyto_clean", "cyto_normalize", "cyto_cluster", "cyto_annotate"),
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
        per_sample = rule.endswith(("ingest", "_qc", "clean"))
        assert jobs.get(rule) == (4 if per_sample else 1), (rule, jobs)
    others = {r for m, rules in CHAINS.items() if m != name for r in rules} - set(CHAINS[name])
    assert not others & set(jobs), jobs
    assert "profile_differential_abundance" not in jobs  # no contrast in these configs


def test_flow_config_runs_to_a_one_modality_profile(tmp_path):
    work = make_workdir(tmp_path, "flow")
    run_snakemake(work)
    comp = pd.read_csv(work / "results/profile/composition.tsv", sep="\t")
    assert set(comp["modality"]) == {"flow"}
    assert set(comp["sample_id"]) == {"P1_pre", "P2_pre", "P1_post", "P2_post"}
    wide = pd.read_csv(work / "results/profile/composition_wide.tsv", sep="\t")
    assert len(wide) == 4 and {"patient", "response"} <= set(wide.columns)
    status = pd.read_csv(work / "results/profile/qc_status.tsv", sep="\t")
    assert set(status["modality"]) == {"flow"} and len(status) == 4
    assert not (work / "results/rna").exists() and not (work / "results/cyto/cytof").exists()
    for fig in ("umap", "umap_uncorrected", "metacluster_heatmap", "abundance"):
        assert (work / f"results/cyto/flow/figures/{fig}.png").read_bytes()[:4] == b"\x89PNG"
