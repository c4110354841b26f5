"""Every rule declares memory that grows with the attempt (so a job killed for memory is retried
with more) and a runtime; the SLURM profile's groups name real rules."""

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


def _mem(rule, attempt: int, size_mb: float = 500.0) -> int:
    wildcards = SimpleNamespace(sample="s", modality="flow")
    res = rule.resources["mem_mb"].evaluate(
        wildcards, input=SimpleNamespace(size_mb=size_mb), attempt=attempt, threads=1
    )
    return int(res.value)


def test_memory_grows_with_attempt_and_runtime_is_set(rules):
    assert len(rules) > 20
    for name, rule in rules.items():
        mems = [_mem(rule, a) for a in (1, 2, 3)]
        assert mems[0] >= 256, (name, mems)  # the in-job Snakemake alone takes ~140 MB
        assert mems[0] < mems[1] < mems[2], (name, mems)
        assert int(rule.resources["runtime"].value) > 0, name


def test_slurm_profile_groups_and_gpu_rules_name_real_rules(rules):
    profile = yaml.safe_load((ROOT / "profiles/slurm/config.yaml").read_text())
    assert set(profile["groups"]) <= set(rules)
    assert set(profile["groups"].values()) == set(profile["group-components"])
    assert set(profile["set-resources"]) <= set(rules)
    assert profile["set-resources"]["rna_integrate"]["gpu"] == 1
    assert profile["retries"] >= 1 and profile["keep-going"] is True
