"""Typed step parameters: built from the schema-validated config in one place, every config key
used, and no package default that disagrees with the schema's."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import pkgutil

import pytest
import yaml

import immunoprofiler
from immunoprofiler import params as P
from tests.conftest import CONFIG_SCHEMA, default_config

SCHEMA = yaml.safe_load(CONFIG_SCHEMA.read_text())


def schema_defaults(node=SCHEMA, path=()) -> dict[tuple[str, ...], object]:
    """``{("rna", "qc", "max_pct_mt"): 20, ...}`` for every leaf key with a default."""
    out = {}
    for key, sub in node.get("properties", {}).items():
        if "properties" in sub:
            out.update(schema_defaults(sub, (*path, key)))
        elif "default" in sub:
            out[(*path, key)] = sub["default"]
    return out


DEFAULTS = schema_defaults()


def section(*path: str) -> dict[str, object]:
    n = len(path)
    return {k[n]: v for k, v in DEFAULTS.items() if k[:n] == path and len(k) == n + 1}


def test_every_step_gets_the_schema_defaults():
    p = P.StepParams.from_config(default_config())
    assert p.rna_qc == P.RnaQc(**section("rna", "qc"), seed=0)
    assert p.rna_integrate.method == "scvi" and p.rna_integrate.max_epochs is None
    assert p.rna_bam_count.reads.gene_tags == ("GX", "GE")  # lists become tuples (frozen)
    assert p.cyto_preprocess.transform.logicle == P.Logicle(
        **section("cyto", "transform", "logicle")
    )
    assert p.profile_differential_abundance is None  # no contrast, no DA step
    assert p.on_sample_failure == "exclude"  # a batch run goes on without its bad samples
    for step in dataclasses.fields(p):  # every step's parameters are a typed dataclass
        value = getattr(p, step.name)
        if value is not None and step.name != "on_sample_failure":
            assert dataclasses.is_dataclass(value), step.name


def test_config_values_reach_the_steps_and_seed_is_shared():
    cfg = default_config(seed=7)
    cfg["rna"]["integrate"]["method"] = "harmony"
    cfg["cyto"]["clean"]["bead_min"] = 5.5
    cfg["profile"]["contrast"] = {"column": "response", "groups": ["NR", "R"]}
    p = P.StepParams.from_config(cfg)
    assert p.rna_integrate.method == "harmony" and p.cyto_preprocess.clean.bead_min == 5.5
    assert {p.rna_qc.seed, p.cyto_cluster.seed, p.rna_bam_count.seed, p.rna_cluster.seed} == {7}
    da = p.profile_differential_abundance
    assert da.contrast == P.Contrast(column="response", groups=("NR", "R"), paired_by=None)
    assert da.transform == "log_ratio"
    assert hash(p)  # frozen all the way down: usable as a Snakemake parameter


@pytest.mark.parametrize(
    ("where", "key"),
    [
        (("rna", "qc"), "max_pct_mito"),
        (("cyto", "cluster"), "xdims"),
        (("rna", "bam_count"), "umi"),
    ],
)
def test_a_key_without_a_parameter_is_an_error(where, key):
    cfg = default_config()
    cfg[where[0]][where[1]][key] = 1
    with pytest.raises(P.ConfigError, match=key):
        P.StepParams.from_config(cfg)


def test_a_parameter_without_a_key_is_an_error():
    cfg = default_config()
    del cfg["rna"]["cluster"]["resolution"]
    with pytest.raises(P.ConfigError, match="resolution"):
        P.StepParams.from_config(cfg)


def test_parameter_fields_are_the_schema_keys():
    """Each step dataclass has exactly its section's keys (file keys are inputs, not params)."""
    pairs = {
        P.RnaQc: ("rna", "qc"),
        P.RnaNormalize: ("rna", "normalize"),
        P.RnaIntegrate: ("rna", "integrate"),
        P.RnaCluster: ("rna", "cluster"),
        P.RnaAnnotate: ("rna", "annotate"),
        P.CytoIngest: ("cyto", "ingest"),
        P.CytoClean: ("cyto", "clean"),
        P.CytoNormalize: ("cyto", "normalize"),
        P.CytoCluster: ("cyto", "cluster"),
        P.CytoAnnotate: ("cyto", "annotate"),
        P.QcStatus: ("profile", "qc"),
        P.Logicle: ("cyto", "transform", "logicle"),
    }
    files = {"markers", "lineages", "reference", "celltypist_model", "gating"}
    for cls, path in pairs.items():
        fields = {f.name for f in dataclasses.fields(cls)} - {"seed", "species"}
        assert fields == set(section(*path)) - files, cls.__name__


def _defaults(obj) -> dict[str, object]:
    if dataclasses.is_dataclass(obj):
        return {
            f.name: f.default
            for f in dataclasses.fields(obj)
            if f.default is not dataclasses.MISSING
        }
    return {
        name: p.default
        for name, p in inspect.signature(obj).parameters.items()
        if p.default is not inspect.Parameter.empty
    }


def _same(a, b) -> bool:
    return list(a) == list(b) if isinstance(a, list | tuple) else a == b


def test_the_demo_epoch_cap_reaches_only_the_demo_cohort():
    config = default_config()
    config["demo"]["scvi_max_epochs"] = 200
    demo = P.StepParams.from_config(config, demo_cohort=True)
    assert demo.rna_integrate.max_epochs == 200
    assert demo.rna_integrate.kl_warmup_epochs == 200  # the KL weight reaches 1 within the cap
    # a sheet with any sample of the user's: scvi-tools' size-based default
    assert P.StepParams.from_config(config).rna_integrate.max_epochs is None
    assert P.StepParams.from_config(config).rna_integrate.kl_warmup_epochs is None
    config["rna"]["integrate"]["max_epochs"] = 30  # set by the user: used, demo or not
    assert P.StepParams.from_config(config, demo_cohort=True).rna_integrate.max_epochs == 30


def test_is_demo_cohort(tmp_path, monkeypatch):
    from immunoprofiler.datasets import demo_paths, is_demo_cohort

    monkeypatch.chdir(tmp_path)
    demo = demo_paths().values()
    ours = [
        str(tmp_path / "resources/demo/P2_post/counts.h5ad"),
        "resources/demo/P2_pre/filtered_feature_bc_matrix.h5",
    ]
    assert is_demo_cohort(ours, demo)
    assert not is_demo_cohort([*ours, str(tmp_path / "mine.h5")], demo)
    assert not is_demo_cohort([], demo)  # no RNA sample: nothing to cap


def test_package_defaults_agree_with_the_schema():
    """Where a package function or dataclass has a default for a config key, it is the
    schema's: explicitly for the functions the steps call (names mapped where they differ),
    and by a scan of every function for keys whose schema default is unambiguous."""
    from immunoprofiler.datasets import write_demo
    from immunoprofiler.io.bam import BamCountParams, count_matrix
    from immunoprofiler.io.fcs import read_fcs
    from immunoprofiler.pp import batchnorm, cellcalling, cytometry, gating, normalization, quality
    from immunoprofiler.tl import annotation, clustering, differential, flowsom, integration
    from immunoprofiler.tl import qc_status as qcs

    explicit = [
        (quality.qc, ("rna", "qc"), {}),
        (normalization.normalize, ("rna", "normalize"), {}),
        (integration.integrate, ("rna", "integrate"), {}),
        (clustering.cluster, ("rna", "cluster"), {}),
        (annotation.annotate, ("rna", "annotate"), {}),
        (annotation.annotate, ("cyto", "annotate"), {}),
        (annotation.annotate_scanvi, ("rna", "annotate"), {}),
        (BamCountParams, ("rna", "bam_count"), {}),
        (count_matrix, ("rna", "bam_count"), {}),
        (cellcalling.call_cells, ("rna", "bam_count"), {"method": "cell_calling"}),
        (read_fcs, ("cyto", "ingest"), {}),
        (gating.clean, ("cyto", "clean"), {}),
        (gating.auto_gates, ("cyto", "clean"), {}),
        (cytometry.transform, ("cyto", "transform"), {}),
        (batchnorm.fit_quantiles, ("cyto", "normalize"), {}),
        (batchnorm.fit_cytovi, ("cyto", "normalize"), {}),
        (flowsom.fit_som, ("cyto", "cluster"), {}),
        (qcs.qc_status, ("profile", "qc"), {}),
        (differential.differential_abundance, ("profile",), {}),
        (differential.differential_abundance_table, ("profile",), {}),
        (write_demo, ("demo",), {}),
    ]
    for obj, path, rename in explicit:
        keys = section(*path)
        checked = 0
        for name, default in _defaults(obj).items():
            key = rename.get(name, name)
            if key in keys:
                checked += 1
                assert _same(default, keys[key]), (obj.__qualname__, name, default, keys[key])
        assert checked, f"{obj.__qualname__} has no default for a key of {path}"
    assert cytometry.LOGICLE_DEFAULTS == section("cyto", "transform", "logicle")

    # every function of the pipeline's package: a keyword default for a key whose schema
    # default is one value wherever the key appears must be that value
    by_key: dict[str, list] = {}
    for k, v in DEFAULTS.items():
        # the simulator's sizes (n_cells, …) and the sheet's path mean other things elsewhere
        if k[0] not in ("demo", "samples"):
            by_key.setdefault(k[-1], []).append(v)
    unambiguous = {k: v[0] for k, v in by_key.items() if all(_same(x, v[0]) for x in v)}
    # same name, other meaning: the genome label a 10x writer puts in the file (config
    # rna.genome picks which genome a reader takes)
    other_meaning = {("write_10x_h5", "genome"), ("read_obs", "index")}
    scanned = 0
    for mod in pkgutil.walk_packages(immunoprofiler.__path__, "immunoprofiler."):
        if mod.name.startswith("immunoprofiler.datasets"):
            continue  # simulators: their own sizes and seeds (the demo's checked above)
        module = importlib.import_module(mod.name)
        for _, fn in inspect.getmembers(module, inspect.isfunction):
            if fn.__module__ != mod.name:
                continue
            for name, default in _defaults(fn).items():
                if name in unambiguous and (fn.__name__, name) not in other_meaning:
                    scanned += 1
                    assert _same(default, unambiguous[name]), (mod.name, fn.__name__, name)
    assert scanned > 20


def test_importing_params_loads_no_heavy_library():
    """Snakemake unpickles the parameters in every job before the adapter caps its threads:
    the module must not pull in numpy, numba, torch or the scverse stack."""
    import subprocess
    import sys

    code = (
        "import sys, immunoprofiler.params; "
        "print(sorted(m for m in ('numpy', 'pandas', 'anndata', 'numba', 'torch', 'scanpy', "
        "'h5py') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_unknown_keys_anywhere_are_named_with_the_nearest_valid_key():
    config = {
        "sead": 1,
        "rna": {"integration": {"method": "harmony"}, "qc": {"max_pct_mito": 3}},
        "cyto": {"clean": {"bead_min": 3.0}},
        "profile": {"contrast": {"column": "arm", "groups": ["a", "b"], "pared_by": "patient"}},
        "zzz": 1,
    }
    assert P.unknown_keys(config, SCHEMA) == [
        "config key 'sead' is not known (did you mean 'seed'?)",
        "config key 'rna.integration' is not known (did you mean 'integrate'?)",
        "config key 'rna.qc.max_pct_mito' is not known (did you mean 'max_pct_mt'?)",
        "config key 'profile.contrast.pared_by' is not known (did you mean 'paired_by'?)",
        "config key 'zzz' is not known (valid here: samples, seed, on_sample_failure, demo, rna, cyto, "
        "profile)",
    ]
    assert P.unknown_keys(default_config(), SCHEMA) == []


def test_every_object_is_closed_and_every_number_has_a_range():
    def walk(node, path=()):
        if "properties" in node:
            assert node.get("additionalProperties") is False, ".".join(path) or "top level"
            for key, sub in node["properties"].items():
                walk(sub, (*path, key))
            return
        types = node.get("type")
        types = types if isinstance(types, list) else [types]
        if {"number", "integer"} & set(types):
            assert {"minimum", "exclusiveMinimum"} & set(node), ".".join(path)

    walk(SCHEMA)


def test_schema_refuses_out_of_range_thresholds():
    from snakemake.exceptions import WorkflowError

    with pytest.raises(WorkflowError, match="bead_min"):
        default_config(cyto={"clean": {"bead_min": -100}})
    with pytest.raises(WorkflowError, match="seed"):
        default_config(seed=-1)


def test_auto_chemistry_with_a_whitelist_file_is_a_config_error():
    with pytest.raises(P.ConfigError, match="with a whitelist file, name the chemistry"):
        P.StepParams.from_config(default_config(rna={"whitelist": "my_barcodes.txt"}))
    config = default_config(rna={"whitelist": "w.txt", "chemistry": "10xv3"})
    p = P.StepParams.from_config(config)
    assert p.rna_quantify.whitelist == "w.txt" and p.rna_quantify.quantifier == "kallisto"


def test_parsing_the_snakefile_loads_no_heavy_library():
    """Every Snakemake start (each run, dry run and Slurm job) parses the Snakefile: the
    modules its rule files import at top level must not pull in anndata, scanpy or torch
    (2–4 s each, paid again in every Slurm job)."""
    import re
    import subprocess
    import sys

    from tests.conftest import ROOT

    rules = [ROOT / "Snakefile", *sorted((ROOT / "workflow/rules").glob("*.smk"))]
    modules = sorted(
        {
            m
            for f in rules
            for m in re.findall(r"^from (immunoprofiler\S*) import", f.read_text(), re.M)
        }
    )
    assert "immunoprofiler.io.samples" in modules and "immunoprofiler.datasets" in modules
    code = (
        f"import sys; import {', '.join(modules)}; "
        "print(sorted(m for m in ('anndata', 'scanpy', 'torch', 'h5py', 'numba') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_expression_test_comes_from_config():
    contrast = {"column": "timepoint", "groups": ["pre", "post"]}
    default = P.StepParams.from_config(default_config(profile={"contrast": contrast}))
    assert default.profile_differential_expression.method == "deseq2"
    limma = {"contrast": contrast, "expression": {"method": "limma-trend"}}
    chosen = P.StepParams.from_config(default_config(profile=limma))
    assert chosen.profile_differential_expression.method == "limma-trend"
