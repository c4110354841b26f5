"""Provenance as plain data: one entry per step, stored in ``uns["provenance"]``.

:func:`entry` builds one step's record — the immunoprofiler version, the versions of
the key libraries, the parameters (as a JSON string, so ``None`` and nested values
survive the ``.h5ad`` round trip) and the sha256 of the input files the step read from
outside the pipeline (raw data, reference tables, models) — as a one-key mapping
``{step: record}`` (per-sample steps are named ``"<step>:<sample_id>"``). A per-sample step
writes :func:`merge` of its inputs' provenance and its own entry into the ``uns`` of its
output. A cohort file keeps its samples' entries once (:func:`cohort_uns`): the first cohort
file of a chain holds them as one table (``uns["provenance_samples"]``: one row per entry,
written in milliseconds where 1,000 nested records took ~35 s), later cohort files name that
file (``uns["provenance_samples_in"]``) and hold only the cohort steps' entries; :func:`read`
follows the name. No timestamps: a rerun with the same inputs gives identical records.

Examples
--------
>>> prov = merge(read(path), entry("rna_qc:S1", params={"n_mads_mt": 3}))  # doctest: +SKIP
>>> adata.uns["provenance"] = prov  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

KEY_LIBRARIES = (
    "immunoprofiler",
    "anndata",
    "scanpy",
    "numpy",
    "scipy",
    "pandas",
    "scvi-tools",
    "torch",
    "harmonypy",
    "leidenalg",
    "igraph",
    "umap-learn",
    "pynndescent",
    "flowkit",
    "flowsom",
    "celltypist",
)

Provenance = dict[str, dict[str, Any]]

#: ``uns`` key of the cohort file holding its samples' entries as one table
SAMPLES = "provenance_samples"
#: ``uns`` key of later cohort files: that file's path, relative to their own folder
SAMPLES_IN = "provenance_samples_in"
#: the columns of :func:`table`
COLUMNS = ["step", "params", "inputs", "versions"]


@cache
def library_versions(names: tuple[str, ...] = KEY_LIBRARIES) -> dict[str, str]:
    """Installed versions of ``names`` (``"not installed"`` where absent)."""
    out: dict[str, str] = {}
    for name in names:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def sha256sum(path: str | Path, *, chunk_size: int = 1 << 20) -> str:
    """sha256 of a file, or of every file below a directory (sorted by relative path)."""
    path = Path(path)
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        if path.is_dir():
            h.update(str(f.relative_to(path)).encode())
        with open(f, "rb") as fh:
            while chunk := fh.read(chunk_size):
                h.update(chunk)
    return h.hexdigest()


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _jsonable(dataclasses.asdict(value))
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return value


def entry(
    step: str,
    *,
    params: Mapping[str, Any] | Any = None,
    inputs: Iterable[str | Path] = (),
) -> Provenance:
    """The provenance record of ``step`` as ``{step: record}`` (plain, JSON-able data).

    Parameters
    ----------
    step
        Rule name, ``"<rule>:<sample_id>"`` for per-sample steps.
    params
        A mapping or a parameter dataclass; stored as sorted JSON.
    inputs
        Files (or folders) read from outside the pipeline; stored as ``{name: sha256}``.

    Examples
    --------
    >>> e = entry("rna_qc:S1", params={"n_mads_mt": 3})
    >>> e["rna_qc:S1"]["params"]
    '{"n_mads_mt": 3}'
    """
    return {
        step: {
            "step": step,
            "versions": dict(library_versions()),
            "params": json.dumps(_jsonable(params or {}), sort_keys=True),
            "inputs": {Path(p).name: sha256sum(p) for p in inputs},
        }
    }


def merge(*records: Mapping[str, Any] | None) -> Provenance:
    """Union of provenance mappings, later ones winning (inputs' records, then the step's own).

    Examples
    --------
    >>> sorted(merge({"a": {}}, None, {"b": {}}))
    ['a', 'b']
    """
    out: Provenance = {}
    for rec in records:
        out.update(rec or {})
    return out


def table(prov: Mapping[str, Mapping[str, Any]]) -> Any:
    """The entries of ``prov`` as one table (a ``DataFrame``, one row per step sorted by
    step; ``inputs`` and ``versions`` as sorted JSON)."""
    import pandas as pd

    rows = [
        {
            "step": step,
            "params": rec.get("params", "{}"),
            "inputs": json.dumps(dict(rec.get("inputs", {})), sort_keys=True),
            "versions": json.dumps(dict(rec.get("versions", {})), sort_keys=True),
        }
        for step, rec in sorted(prov.items())
    ]
    return pd.DataFrame(rows, columns=COLUMNS)


def from_table(df: Any) -> Provenance:
    """The entries of a :func:`table` as a provenance mapping."""
    return {
        str(r.step): {
            "step": str(r.step),
            "versions": json.loads(r.versions),
            "params": str(r.params),
            "inputs": json.loads(r.inputs),
        }
        for r in df.itertuples(index=False)
    }


def _samples_home(path: str | Path) -> Path | None:
    """The file holding ``path``'s per-sample entries as a table: itself, the file it names,
    or ``None``."""
    import h5py

    with h5py.File(path, "r") as f:
        if f"uns/{SAMPLES}" in f:
            return Path(path)
        if f"uns/{SAMPLES_IN}" in f:
            name = f[f"uns/{SAMPLES_IN}"][()]
            return Path(path).parent / (name.decode() if isinstance(name, bytes) else str(name))
    return None


def cohort_uns(
    prov: Mapping[str, Mapping[str, Any]],
    *,
    out: str | Path,
    inputs: Iterable[str | Path] = (),
) -> dict[str, Any]:
    """The provenance entries of a cohort file's ``uns``: ``provenance``, the cohort steps'
    entries, and the per-sample entries kept once — as a table (``SAMPLES``) unless one of
    ``inputs`` already holds or names a table, then that file's path relative to ``out``'s
    folder (``SAMPLES_IN``).

    Examples
    --------
    >>> uns = cohort_uns(merge(read(qc), entry("rna_normalize")), out=path)  # doctest: +SKIP
    """
    cohort = {k: dict(v) for k, v in prov.items() if ":" not in k}
    homes = {h.resolve() for p in inputs if (h := _samples_home(p)) is not None}
    if len(homes) == 1:
        home = homes.pop()
        return {"provenance": cohort, SAMPLES_IN: os.path.relpath(home, Path(out).resolve().parent)}
    return {"provenance": cohort, SAMPLES: table({k: v for k, v in prov.items() if ":" in k})}


def updated(
    uns: Mapping[str, Any],
    own: Provenance,
    *,
    out: str | Path,
    inputs: Iterable[str | Path] = (),
) -> dict[str, Any]:
    """``uns`` of a cohort file derived from ``inputs``: its ``provenance`` merged with the
    step's ``own`` entry, the per-sample entries named, not copied (:func:`cohort_uns`)."""
    rest = {k: v for k, v in uns.items() if k not in ("provenance", SAMPLES, SAMPLES_IN)}
    return {**rest, **cohort_uns(merge(uns.get("provenance"), own), out=out, inputs=inputs)}


def read(*paths: str | Path) -> Provenance:
    """The merged provenance of ``.h5ad`` files, read without any matrix: ``uns["provenance"]``
    and the per-sample entries the file holds or names (:func:`cohort_uns`)."""
    import h5py
    from anndata.io import read_elem

    out: Provenance = {}
    for path in paths:
        home = _samples_home(path)
        if home is not None and home.resolve() != Path(path).resolve():
            if not home.is_file():
                raise FileNotFoundError(
                    f"{path}: its per-sample provenance is in {home}, which is missing"
                )
            out.update(read(home))
        with h5py.File(path, "r") as f:
            if f"uns/{SAMPLES}" in f:
                out.update(from_table(read_elem(f[f"uns/{SAMPLES}"])))
            if "uns/provenance" in f:
                out.update(read_elem(f["uns/provenance"]))
    return out


def read_lock(path: str | Path) -> dict[str, str]:
    """``{package: version}`` pinned by a lock file (``name==version`` lines, hashes ignored)."""
    import re

    pins = {}
    for line in Path(path).read_text().splitlines():
        if m := re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s\\;]+)", line):
            pins[m[1].lower().replace("_", "-")] = m[2]
    return pins


def environment_vs_lock(path: str | Path) -> list[dict[str, str]]:
    """Every package of the lock file with the version installed here and whether they
    match (``same``, ``different``, ``not installed``): what a rerun elsewhere would differ in."""
    rows = []
    for name, locked in sorted(read_lock(path).items()):
        try:
            installed = version(name)
        except PackageNotFoundError:
            installed = ""
        status = "same" if installed == locked else "different" if installed else "not installed"
        rows.append({"package": name, "locked": locked, "installed": installed, "status": status})
    return rows
