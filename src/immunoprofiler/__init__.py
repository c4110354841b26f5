"""immunoprofiler: annotated immune profiles from scRNA-seq, CyTOF and flow cytometry."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("immunoprofiler")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
