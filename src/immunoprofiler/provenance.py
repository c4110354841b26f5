"""Provenance as plain data: one entry per step, stored in ``uns["provenance"]``.

:func:`entry` builds one step's record — the immunoprofiler version, the versions of
the key libraries, the parameters (as a JSON string, so ``None`` and nested values
survive the ``.h5ad`` round trip) and the sha256 of the input files the step read from
outside the pipeline (raw data, reference tables, models) — as a one-key mapping
``{step: record}`` (per-sample steps are named ``"<step>:<sample_id>"``). A step writes
:func:`merge` of its inputs' provenance and its own entry into the ``uns`` of its output;
cohort steps merge the entries of every input the same way. No timestamps: a rerun with
the same inputs gives identical records.

Examples
--------
>>> prov = merge(read(path), entry("rna_qc:S1", params={"n_mads_mt": 3}))  # doctest: +SKIP
>>> adata.uns["provenance"] = prov  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
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


def read(*paths: str | Path) -> Provenance:
    """The merged ``uns["provenance"]`` of ``.h5ad`` files, read without any matrix."""
    import h5py
    from anndata.io import read_elem

    out: Provenance = {}
    for path in paths:
        with h5py.File(path, "r") as f:
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
