"""Every rule declares memory and runtime that grow with the attempt (so a job killed for
memory or time is retried with more) and follow the size of its inputs; the SLURM profile's
groups name real rules."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import yaml

from tests.conftest import ROOT


def _rules(config: dict | None = None) -> dict:
    """The workflow's rules with the demo config, ``config`` overriding it (as ``--config``)."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import ConfigSettings, ResourceSettings, StorageSettings

    with SnakemakeApi() as api:
        wf = api.workflow(
            resource_settings=ResourceSettings(),
            config_settings=ConfigSettings(
                configfiles=[ROOT / "config" / "config.yaml"], config=config or {}
            ),
            storage_settings=StorageSettings(),
            snakefile=ROOT / "Snakefile",
            workdir=ROOT,
        )
        return {r.name: r for r in wf._workflow.rules if r.name != "all"}


@pytest.fixture(scope="module")
def rules():
    return _rules()


class _Input(list):
    """A job's input as a resource function sees it: the files (named ``in0``, ``in1``, ...
    or by ``named``), their sizes, and each named input as an attribute."""

    def __init__(self, sizes: dict[str, float]):
        super().__init__(sizes)
        self.__dict__.update({name: name for name in sizes})
        self.size_files_mb = list(sizes.values())
        self.size_mb = sum(self.size_files_mb)

    def __getattr__(self, name: str) -> str:  # a named input the test did not size: absent
        return f"<no {name}>"


def _res(
    rule,
    key: str,
    attempt: int = 1,
    size_mb: float = 500.0,
    files: int = 1,
    named: dict[str, float] | None = None,
) -> int:
    """A resource of ``rule`` for ``files`` inputs of ``size_mb`` in all, or for the named
    inputs of the sizes ``named``."""
    wildcards = SimpleNamespace(sample="s", modality="flow")
    res = rule.resources[key]
    if not res.is_evaluable():  # a constant
        return int(res.value)
    sizes = named or {f"in{i}": size_mb / files for i in range(files)}
    out = res.evaluate(wildcards, input=_Input(sizes), attempt=attempt, threads=1)
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
    for name in ("cyto_preprocess", "cyto_cluster", "rna_qc", "rna_integrate"):
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


def test_rna_steps_at_1m_cells_ask_for_what_they_hold(rules):
    """Measured at 1M cells (bench/results/rna_1M_2cores_*.json): rna_annotate reads a few
    columns of the 31 GB normalised cohort (0.6 / 0.3 GB clustered / integrated files; it
    took 1.4 GB and a minute) and asks for a few GB and hours, not 18 GB and 22 hours;
    more cells, more of both. rna_pseudobulk holds one sample (0.5 GB QC'd file, 0.35 GB
    annotated obs; 1.4 GB used): not 12 GB. rna_normalize took 191 s for 10.4 GB of QC'd
    files and asked 224 min."""
    pseudobulk = {"qc": 520.0, "annotated": 350.0}
    assert 1_500 < _res(rules["rna_pseudobulk"], "mem_mb", named=pseudobulk) < 6_000
    # rna_normalize took 191 s for 10.4 GB of QC'd files: an hour or so, not 4 hours
    normalize = rules["rna_normalize"]
    assert 10 < _res(normalize, "runtime", 1, 10_400.0, files=20) < 90
    assert _res(normalize, "runtime", 1, 100_000.0, files=1000) > _res(
        normalize, "runtime", 1, 10_400.0, files=20
    )
    rule = rules["rna_annotate"]
    at_1m = {"normalized": 31_000.0, "clustered": 620.0, "integrated": 330.0}
    assert 2_000 < _res(rule, "mem_mb", named=at_1m) < 6_000
    assert _res(rule, "runtime", named=at_1m) < 180
    larger = {k: v * (1 if k == "normalized" else 4) for k, v in at_1m.items()}
    assert _res(rule, "mem_mb", named=larger) > _res(rule, "mem_mb", named=at_1m)
    assert _res(rule, "runtime", named=larger) > _res(rule, "runtime", named=at_1m)
    assert _res(rule, "mem_mb", 2, named=at_1m) > _res(rule, "mem_mb", 1, named=at_1m)


def _mtx_folder(folder, entries: int):
    """A 10x folder whose matrix header declares ``entries`` (the sizing reads no further)."""
    folder.mkdir()
    (folder / "matrix.mtx").write_text(
        f"%%MatrixMarket matrix coordinate integer general\n20000 50000 {entries}\n"
    )
    return folder


def test_rna_ingest_asks_for_the_counts_it_reads(rules, tmp_path):
    """Snakemake sizes a 10x folder as its inode (4 KB), so the ask was flat whatever the
    matrix: it now follows the entries in the matrix's header (100M entries, a ~50k-cell
    sample, need several GB), more with each attempt. A header that cannot be read (the
    job will fail naming the file) gets the size-based ask instead of an error while
    Snakemake schedules the batch."""
    rule = rules["rna_ingest"]
    small = _mtx_folder(tmp_path / "small", 10_000_000)
    large = _mtx_folder(tmp_path / "large", 100_000_000)
    ask = {p.name: _res(rule, "mem_mb", named={str(p): 0.004}) for p in (small, large)}
    assert 3_000 < ask["large"] < 16_000
    assert ask["small"] < ask["large"] / 3
    assert abs(_res(rule, "mem_mb", 2, named={str(large): 0.004}) - 2 * ask["large"]) <= 1
    broken = tmp_path / "broken.h5"
    broken.write_bytes(b"not HDF5")
    assert _res(rule, "mem_mb", named={str(broken): 500.0}) == 1500 + 12 * 500


def test_rna_integrate_sized_for_its_method(rules):
    """scVI (the demo config) asks memory for the HVG counts and hours; Harmony a few GB and
    under an hour at 1M cells (measured 0.7 GB, 40 s for a 1.9 GB HVG file)."""
    harmony = _rules({"rna": {"integrate": {"method": "harmony"}}})["rna_integrate"]
    scvi = rules["rna_integrate"]
    assert _res(harmony, "mem_mb", 1, 1_900.0) < 4_000 < _res(scvi, "mem_mb", 1, 1_900.0)
    assert _res(harmony, "runtime", 1, 1_900.0) < 60 < _res(scvi, "runtime", 1, 1_900.0)
