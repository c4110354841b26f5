"""The sample sheet: one row per data file, validated before any job runs."""

from __future__ import annotations

import os
import re
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import jsonschema
import pandas as pd

REQUIRED = ("sample_id", "modality", "batch")  # and path, or fastq_1 + fastq_2 (RNA)
ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
RNA_SUFFIXES = (".h5", ".h5ad", ".bam")


class SampleSheetError(ValueError):
    """The sample sheet has one or more problems; the message lists all of them."""


def _problem(row: int, sample: str, column: str, value: Any, why: str) -> str:
    return f"row {row} (sample_id '{sample}'), column '{column}', value '{value}': {why}"


def resolve_path(value: str, sheet_dir: Path) -> str:
    """Resolve ``value`` against the sheet's folder.

    The result is relative to the working directory when it lies below it (so it
    matches the paths workflow rules write), absolute otherwise.
    """
    p = Path(value).expanduser()
    if not p.is_absolute():
        p = sheet_dir / p
    absolute = os.path.abspath(p)
    cwd = os.getcwd()
    if os.path.commonpath([absolute, cwd]) == cwd:
        return os.path.relpath(absolute, cwd)
    return absolute


def locate_sheet(value: str | Path, *, start_dir: str | Path | None) -> Path:
    """The sample sheet named by config ``samples``, as an absolute path.

    A relative path is looked up in the working directory first (Snakemake's convention for
    paths in a config file), then in ``start_dir``, where Snakemake was started (they differ
    with ``--directory``: ``--config samples=my.tsv`` means the ``my.tsv`` the user sees).

    Raises
    ------
    SampleSheetError
        Naming every place looked in.
    """
    p = Path(value).expanduser()
    candidates = [p] if p.is_absolute() else [Path.cwd() / p]
    if not p.is_absolute() and start_dir and Path(start_dir).resolve() != Path.cwd().resolve():
        candidates.append(Path(start_dir) / p)
    for c in candidates:
        if c.is_file():
            return c.resolve()
    where = " or ".join(str(c.absolute()) for c in candidates)
    raise SampleSheetError(f"sample sheet {value}: file does not exist (looked for {where})")


def is_10x_dir(path: Path) -> bool:
    """True if ``path`` is (or holds exactly below it) a 10x matrix folder."""
    return any(path.rglob("matrix.mtx")) or any(path.rglob("matrix.mtx.gz"))


def is_fastq_dir(path: Path) -> bool:
    """True if ``path`` holds (below it) FASTQ files named as bcl2fastq / BCL Convert name
    them, and no 10x matrix."""
    from .fastq import parse_fastq_name

    return not is_10x_dir(path) and any(parse_fastq_name(p.name) for p in path.rglob("*.f*q.gz"))


def _fastq_pairs(
    rec: Mapping[str, str], path: str, sheet_dir: Path, pending: Collection[str] = ()
) -> tuple[str, str]:
    """An RNA row's R1 and R2 files, comma-joined (``fastq_1`` / ``fastq_2``, or the FASTQ
    folder ``path``), resolved; ``("", "")`` for a row that names no reads. Raises
    :class:`~immunoprofiler.io.fastq.FastqError` for unpaired or missing files."""
    from .fastq import FastqError, find_read_pairs, read_pairs_from_lists

    sid = rec.get("sample_id", "")
    if rec.get("fastq_1") or rec.get("fastq_2"):
        pairs = read_pairs_from_lists(rec.get("fastq_1", ""), rec.get("fastq_2", ""), sid)
    elif path and Path(path).is_dir() and is_fastq_dir(Path(path)):
        pairs = find_read_pairs(path, sid)
    else:
        return "", ""
    r1 = [resolve_path(str(p.r1), sheet_dir) for p in pairs]
    r2 = [resolve_path(str(p.r2), sheet_dir) for p in pairs]
    for f in r1 + r2:
        if not Path(f).is_file() and os.path.abspath(f) not in pending:
            raise FastqError(f"sample {sid}: {f}: file does not exist")
    return ",".join(r1), ",".join(r2)


def _check_file(path: str, modality: str) -> str | None:
    from .fastq import is_gzip

    p = Path(path)
    if not p.exists():
        return "file or folder does not exist"
    if not os.access(p, os.R_OK):
        return "not readable"
    if modality == "rna" and p.suffix == ".bam" and not is_gzip(p):
        return "not a BAM file (not BGZF-compressed)"
    if modality in ("cytof", "flow"):
        if p.is_dir():
            return "a cytometry row needs an FCS file, not a folder"
        with open(p, "rb") as fh:
            head = fh.read(3)
        if head != b"FCS":
            return f"not an FCS file (starts with {head!r})"
    if modality == "rna":
        if p.is_dir():
            if not is_10x_dir(p) and not is_fastq_dir(p):
                return (
                    "folder holds no 10x matrix (matrix.mtx or matrix.mtx.gz) and no 10x FASTQ "
                    "files (<name>_S<n>_L<lane>_R1_001.fastq.gz)"
                )
        elif p.suffix not in RNA_SUFFIXES:
            return (
                "unsupported scRNA-seq input: expected a 10x .h5, a 10x matrix folder, an .h5ad "
                "or an aligned .bam"
            )
    return None


def _check_panel(panel: str, fcs: str, modality: str) -> str | None:
    """The panel checked against the FCS file's header (channels present, classes, cofactors):
    what would otherwise fail inside the file's first job."""
    from .fcs import FCSError
    from .panel import PanelError, file_panel

    try:
        file_panel(fcs, panel, modality=modality)
    except (FCSError, PanelError) as err:
        return str(err)
    return None


def read_sample_sheet(
    path: str | Path,
    *,
    schema: Mapping[str, Any],
    pending: Collection[str] = (),
    contrast: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """Read and validate a sample sheet; raise one :class:`SampleSheetError` listing every problem.

    Parameters
    ----------
    path
        Tab-separated sheet, one row per data file.
    schema
        JSON schema of one row (``workflow/schemas/samples.schema.yaml``).
    pending
        Paths that do not exist yet but will be written by the workflow before they are
        read (the generated demo data); they are not reported as missing.
    contrast
        Config ``profile.contrast``: checked against the sheet (:func:`check_contrast`).

    Returns
    -------
    The sheet with ``path`` resolved against the sheet's folder, all values as strings
    (empty where not given), in file order.

    Examples
    --------
    >>> sheet = read_sample_sheet("config/samples.tsv", schema=schema)  # doctest: +SKIP
    """
    path = Path(path)
    if not path.is_file():
        raise SampleSheetError(f"sample sheet {path}: file does not exist")
    try:
        df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, comment=None)
    except Exception as err:  # pandas raises several types for malformed tables
        raise SampleSheetError(f"sample sheet {path}: cannot be parsed as TSV ({err})") from err
    df.columns = [c.strip() for c in df.columns]
    df = df.apply(lambda col: col.str.strip())
    problems: list[str] = []
    missing = [c for c in REQUIRED if c not in df.columns]
    if "path" not in df.columns:
        if "fastq_1" in df.columns:
            df["path"] = ""
        else:
            missing.append("path")
    if missing:
        problems.append(f"missing required column(s): {', '.join(missing)}")
    if df.empty:
        problems.append("the sheet has no rows")
    if problems:
        raise SampleSheetError(f"sample sheet {path}:\n  - " + "\n  - ".join(problems))

    validator = jsonschema.validators.validator_for(schema)(schema)
    sheet_dir = path.parent
    resolved: list[str] = []
    panels: list[str] = []
    reads: list[tuple[str, str]] = []
    pending_set = {os.path.abspath(p) for p in pending}
    for i, rec in enumerate(df.to_dict(orient="records"), start=2):  # row 1 is the header
        sid = rec.get("sample_id", "")
        record = {k: v for k, v in rec.items() if v != ""}
        for err in sorted(validator.iter_errors(record), key=lambda e: list(e.path)):
            column = err.path[0] if err.path else (err.validator_value or ["?"])[0]
            if err.validator == "required":
                column = err.message.split("'")[1]
            problems.append(_problem(i, sid, str(column), record.get(str(column), ""), err.message))
        p = resolve_path(rec["path"], sheet_dir) if rec["path"] else ""
        resolved.append(p)
        has_reads = bool(rec.get("fastq_1") or rec.get("fastq_2"))
        if has_reads and rec["modality"] != "rna":
            problems.append(
                _problem(i, sid, "fastq_1", rec.get("fastq_1", ""), "FASTQ files are for RNA rows")
            )
        if not p and not has_reads:
            problems.append(
                _problem(i, sid, "path", "", "required (or fastq_1 and fastq_2 for an RNA row)")
            )
        try:
            reads.append(
                _fastq_pairs(rec, p, sheet_dir, pending_set)
                if rec["modality"] == "rna"
                else ("", "")
            )
        except ValueError as err:  # FastqError: unpaired lists, a missing mate or file
            reads.append(("", ""))
            problems.append(_problem(i, sid, "fastq_1" if has_reads else "path", "", str(err)))
            has_reads = True  # reported; the path is not checked as a matrix too
        fcs_ok = False  # a readable FCS file here: its panel can be checked against it
        if (
            p
            and not has_reads
            and os.path.abspath(p) not in pending_set
            and rec["modality"] in ("rna", "cytof", "flow")
        ):
            why = _check_file(p, rec["modality"])
            if why:
                problems.append(_problem(i, sid, "path", rec["path"], f"{why} (resolved: {p})"))
            fcs_ok = why is None and rec["modality"] != "rna"
        panel = rec.get("panel", "")
        if panel:
            if rec["modality"] == "rna":
                problems.append(
                    _problem(i, sid, "panel", panel, "a panel is for cytometry rows only")
                )
            pp = resolve_path(panel, sheet_dir)
            panels.append(pp)
            if os.path.abspath(pp) not in pending_set and not Path(pp).is_file():
                problems.append(
                    _problem(i, sid, "panel", panel, f"panel file does not exist (resolved: {pp})")
                )
            elif rec["modality"] in ("cytof", "flow") and Path(pp).is_file() and fcs_ok:
                if why := _check_panel(pp, p, rec["modality"]):
                    problems.append(_problem(i, sid, "panel", panel, why))
        else:
            panels.append("")
    dup = df[df.duplicated(["modality", "sample_id"], keep=False)]
    for (modality, sid), grp in dup.groupby(["modality", "sample_id"]):
        rows = ", ".join(str(r + 2) for r in grp.index)
        problems.append(
            _problem(
                int(grp.index[0]) + 2,
                sid,
                "sample_id",
                sid,
                f"not unique within modality '{modality}' (rows {rows})",
            )
        )
    if problems:
        raise SampleSheetError(
            f"sample sheet {path} has {len(problems)} problem(s):\n  - " + "\n  - ".join(problems)
        )
    df["path"] = resolved
    df["fastq_1"] = [r1 for r1, _ in reads]
    df["fastq_2"] = [r2 for _, r2 in reads]
    if "panel" in df.columns:
        df["panel"] = panels
    check_contrast(df, contrast)
    return df


#: sheet columns that name files, not describe the sample
FILE_COLUMNS = ("path", "panel", "fastq_1", "fastq_2")
#: values of the reference column (config ``cyto.normalize.reference_column``) that mark a
#: reference (control) sample, compared without case
REFERENCE_VALUES = frozenset({"1", "true", "yes", "y", "ref", "reference", "t"})


def is_reference(value: object) -> bool:
    """True when a sheet value marks a reference sample (``ref``, ``true``, ``yes``, ``1``…).

    Examples
    --------
    >>> is_reference("Ref"), is_reference(""), is_reference("no")
    (True, False, False)
    """
    return str(value).strip().lower() in REFERENCE_VALUES


def sample_metadata(sheet: pd.DataFrame, sample_id: str, modality: str) -> dict[str, str]:
    """Metadata columns of one sheet row, to carry into ``obs`` (everything but the file
    columns :data:`FILE_COLUMNS`)."""
    row = sheet[(sheet["sample_id"] == sample_id) & (sheet["modality"] == modality)]
    if row.empty:
        raise KeyError(f"sample '{sample_id}' ({modality}) is not in the sample sheet")
    return {k: v for k, v in row.iloc[0].items() if k not in FILE_COLUMNS}


def metadata_table(sheet: pd.DataFrame) -> pd.DataFrame:
    """The sheet's descriptive columns (all but :data:`FILE_COLUMNS`), one row per sample and
    modality: what the cohort steps need of the sheet."""
    return sheet[[c for c in sheet.columns if c not in FILE_COLUMNS]].reset_index(drop=True)


def add_metadata(adata, metadata: Mapping[str, str]) -> None:
    """Write one sample's sheet metadata into every row of ``adata.obs`` as categoricals
    (one category each: a string per cell would cost memory for nothing)."""
    for key, value in metadata.items():
        adata.obs[key] = pd.Categorical([value] * adata.n_obs)


def check_contrast(sheet: pd.DataFrame, contrast: Mapping[str, Any] | None) -> None:
    """Raise :class:`SampleSheetError` when the contrast (config ``profile.contrast``) names
    a column (``column``, ``paired_by``, ``covariates``) the sheet lacks or a group that never
    occurs in its column.

    Examples
    --------
    >>> check_contrast(sheet, {"column": "response", "groups": ["NR", "R"]})  # doctest: +SKIP
    """
    if not contrast:
        return
    problems = []
    named = [(key, contrast.get(key)) for key in ("column", "paired_by")]
    named += [("covariate", c) for c in contrast.get("covariates") or ()]
    for key, col in named:
        if col and col not in sheet.columns:
            problems.append(f"{key} '{col}' is not a sheet column ({', '.join(sheet.columns)})")
    col = contrast["column"]
    if col in sheet.columns:
        values = set(sheet[col].astype(str))
        missing = [g for g in contrast["groups"] if g not in values]
        if missing:
            problems.append(f"group(s) {missing} never appear in column '{col}' ({sorted(values)})")
    if len(set(contrast["groups"])) < len(contrast["groups"]):
        problems.append(f"groups {list(contrast['groups'])} must differ")
    if problems:
        raise SampleSheetError("profile.contrast: " + "; ".join(problems))


def panel_groups(
    sheet: pd.DataFrame, *, merge: bool = False, pending: Collection[str] = ()
) -> pd.Series:
    """The panel group of every cytometry row of a validated sheet (index: the sheet's).

    Each file's panel is read from its FCS header (and the sheet's panel file), no event
    data: see :func:`immunoprofiler.io.panel.assign_panel_groups` for how files are grouped
    and named; ``merge`` is config ``cyto.merge_panels: shared``. Files in ``pending`` (not
    written yet) and files whose header cannot be read (their first job fails them) are
    not read.

    Examples
    --------
    >>> panel_groups(sheet).value_counts()  # doctest: +SKIP
    """
    from .fcs import FCSError
    from .panel import PanelError, assign_panel_groups, file_panel, panel_signature

    pending_set = {os.path.abspath(p) for p in pending}
    cyto = sheet[sheet["modality"].isin(["cytof", "flow"])]
    explicit = cyto["panel_group"] if "panel_group" in cyto else pd.Series("", index=cyto.index)
    panels = cyto["panel"] if "panel" in cyto else pd.Series("", index=cyto.index)
    out = pd.Series("", index=cyto.index, dtype=object)
    for modality, rows in cyto.groupby("modality", sort=False):
        signatures = []
        for i, path in rows["path"].items():
            if os.path.abspath(path) in pending_set:
                signatures.append(None)
                continue
            try:
                table = file_panel(path, panels[i] or None, modality=modality)
            except (FCSError, PanelError, OSError):
                signatures.append(None)
                continue
            signatures.append(panel_signature(table))
        out[rows.index] = assign_panel_groups(
            signatures,
            explicit=list(explicit[rows.index]),
            panels=list(panels[rows.index]),
            merge=merge,
        )
    return out
