"""Every rule declares memory and runtime that grow with the attempt (so a job killed for
memory or time is retried with more) and follow the size of its inputs; the SLURM profile's
groups name real rules."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import yaml

from tests.conftest import ROOT


@pytest.fixture(scope="module")
def rules():
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import ConfigSettings, ResourceSettings, StorageSettings

    with SnakemakeApi() as api:
        wf = api.workflow(
            resource_settings=ResourceSettings(),
            config_settings=ConfigSettings(configfiles=[ROOT / "config" / "config.yaml"]),
            storage_settings=StorageSettings(),
            snakefile=ROOT / "Snakefile",
            workdir=ROOT,
        )
        return {r.name: r for r in wf._workflow.rules if r.name != "all"}


def _res(rule, key: str, attempt: int = 1, size_mb: float = 500.0, files: int = 1) -> int:
    """A resource of ``rule`` for ``files`` inputs of ``size_mb`` in all."""
    wildcards = SimpleNamespace(sample="s", modality="flow")
    res = rule.resources[key]
    if not res.is_evaluable():  # a constant
        return int(res.value)
    out = res.evaluate(
        wildcards,
        input=SimpleNamespace(size_mb=size_mb, size_files_mb=[size_mb / files] * files),
        attempt=attempt,
        threads=1,
    )
    return int(out.value)


def test_memory_grows_with_attempt_and_runtime_is_set(rules):
    assert len(rules) > 20
    for name, rule in rules.items():
        mems = [_res(rule, "mem_mb", a) for a in (1, 2, 3)]
        assert mems[0] >= 256, (name, mems)  # the in-job Snakemake alone takes ~140 MB
        assert mems[0] < mems[1] < mems[2], (name, mems)
        assert _res(rule, "runtime") > 0, name


def test_resources_follow_input_size(rules):
    """Larger inputs get more memory and time, each retry more again; the cytometry cohort
    steps, which map over files, ask far less than their inputs' size (a cohort of 100M
    events, ~100 GB of files, fits a 12 GB node)."""
    for name in ("cyto_preprocess", "cyto_cluster", "rna_qc", "rna_annotate", "rna_integrate"):
        rule = rules[name]
        assert _res(rule, "mem_mb", 1, 100.0) < _res(rule, "mem_mb", 1, 10_000.0), name
        assert _res(rule, "runtime", 1, 100.0) < _res(rule, "runtime", 1, 50_000.0), name
        assert _res(rule, "runtime", 2, 100.0) > _res(rule, "runtime", 1, 100.0), name
    for name in ("cyto_normalize", "cyto_cluster", "cyto_annotate", "cyto_composition"):
        assert _res(rules[name], "mem_mb", 1, 100_000.0) < 12_000, name
    # RNA normalisation holds a block of cells and the cohort's obs: 1,000 samples of 100 MB
    # ask for less than 12 GB, a larger cohort (more obs) for more
    normalize = rules["rna_normalize"]
    assert _res(normalize, "mem_mb", 1, 100_000.0, files=1000) < 12_000
    assert _res(normalize, "mem_mb", 1, 1000.0) > _res(normalize, "mem_mb", 1, 100.0)


def test_slurm_profile_groups_and_gpu_rules_name_real_rules(rules):
    profile = yaml.safe_load((ROOT / "profiles/slurm/config.yaml").read_text())
    assert set(profile["groups"]) <= set(rules)
    assert set(profile["groups"].values()) == set(profile["group-components"])
    assert set(profile["set-resources"]) <= set(rules)
    assert profile["set-resources"]["rna_integrate"]["gpu"] == 1
    assert profile["retries"] >= 1 and profile["keep-going"] is True
