"""Compare the tables of two results folders (e.g. the demo run at two commits).

Every ``.tsv`` / ``.tsv.gz`` under ``A/results`` is matched with the same path under
``B/results`` (or the path ``--rename OLD=NEW`` gives it: output names that changed between
the two); each pair is reported identical (bytes), equal after sorting rows, equal within
``--atol`` on the numbers, or different (the columns that differ and the largest difference).
Files found on one side only are listed. Provenance and environment tables (versions, paths,
checksums of the run's own files) are left out unless ``--all``.

Usage: python tools/compare_results.py A B [--rename OLD=NEW ...] [--atol 1e-9] [--all]
Exit status 0 when every table is identical or equal, 1 otherwise.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

SKIP = ("provenance", "environment")


def tables(root: Path) -> dict[str, Path]:
    return {
        str(p.relative_to(root)): p
        for p in sorted(root.rglob("*"))
        if p.name.endswith((".tsv", ".tsv.gz")) and p.is_file()
    }


def compare(a: Path, b: Path, atol: float) -> str:
    if a.read_bytes() == b.read_bytes():
        return "identical"
    x, y = (pd.read_csv(p, sep="\t") for p in (a, b))
    if list(x.columns) != list(y.columns):
        return f"different columns: {sorted(set(x.columns) ^ set(y.columns))}"
    if x.shape != y.shape:
        return f"different shape: {x.shape} vs {y.shape}"
    cols = list(x.columns)
    x, y = (d.sort_values(cols, ignore_index=True) for d in (x, y))
    if x.equals(y):
        return "equal after sorting rows"
    diffs = []
    for c in cols:
        u, v = x[c], y[c]
        if pd.api.types.is_numeric_dtype(u) and pd.api.types.is_numeric_dtype(v):
            d = np.nanmax(np.abs(u.to_numpy(float) - v.to_numpy(float))) if len(u) else 0.0
            same_nan = (u.isna() == v.isna()).all()
            if d > atol or not same_nan:
                diffs.append(f"{c} (max |diff| {d:.3g})")
        elif not u.astype(str).equals(v.astype(str)):
            diffs.append(f"{c} ({int((u.astype(str) != v.astype(str)).sum())} rows)")
    return f"equal within {atol:g}" if not diffs else "different: " + ", ".join(diffs)


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("a", type=Path)
    ap.add_argument("b", type=Path)
    ap.add_argument("--rename", action="append", default=[], metavar="OLD=NEW")
    ap.add_argument("--atol", type=float, default=1e-9)
    ap.add_argument("--all", action="store_true", help="also provenance/environment tables")
    args = ap.parse_args()
    rename = dict(r.split("=", 1) for r in args.rename)
    ta, tb = tables(args.a / "results"), tables(args.b / "results")
    ok = True
    for name, path in ta.items():
        if not args.all and any(s in name for s in SKIP):
            continue
        other = rename.get(name, name)
        if other not in tb:
            print(f"only in A: {name}")
            ok = False
            continue
        verdict = compare(path, tb[other], args.atol)
        ok &= verdict.startswith(("identical", "equal"))
        shown = name if other == name else f"{name} -> {other}"
        print(f"{verdict:<40} {shown}")
    matched = {rename.get(n, n) for n in ta}
    for name in tb:
        if name not in matched and (args.all or not any(s in name for s in SKIP)):
            print(f"only in B: {name}")
            ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
