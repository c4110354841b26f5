"""Provenance records stored in ``adata.uns["provenance"]``.

Every step adds one entry keyed by its step name (per-sample steps by
``"<step>:<sample_id>"``). An entry holds the immunoprofiler version, the versions
of the key libraries, the parameters (as a JSON string, so ``None`` and nested
values survive the ``.h5ad`` round trip) and the sha256 of the input files the
step read from outside the pipeline (raw data, reference tables, models).
No timestamps: a rerun with the same inputs gives identical records.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from anndata import AnnData

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


def library_versions(names: Iterable[str] = KEY_LIBRARIES) -> dict[str, str]:
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
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return value


def record(
    adata: AnnData,
    step: str,
    *,
    params: Mapping[str, Any] | None = None,
    inputs: Iterable[str | Path] = (),
) -> None:
    """Add the provenance entry of ``step`` to ``adata.uns["provenance"]`` in place.

    Examples
    --------
    >>> record(adata, "rna_qc:S1", params={"n_mads": 5})
    >>> adata.uns["provenance"]["rna_qc:S1"]["versions"]["scanpy"]  # doctest: +SKIP
    '1.11.5'
    """
    prov = dict(adata.uns.get("provenance", {}))
    prov[step] = {
        "step": step,
        "versions": library_versions(),
        "params": json.dumps(_jsonable(dict(params or {})), sort_keys=True),
        "inputs": {Path(p).name: sha256sum(p) for p in inputs},
    }
    adata.uns["provenance"] = prov


def merge(records: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Union of several ``uns["provenance"]`` mappings (for cohort steps)."""
    out: dict[str, Any] = {}
    for rec in records:
        out.update(rec)
    return out
