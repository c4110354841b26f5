"""Per-sample pass / fail for a core facility's batch: each sample of each modality passes QC
or gets the reasons it does not, so it can be sent back to its submitter."""

from __future__ import annotations

import pandas as pd

STATUS_COLUMNS = [
    "sample_id",
    "modality",
    "n_input",
    "n_retained",
    "fraction_retained",
    "fraction_unknown",
    "passed",
    "excluded",
    "reasons",
]


def qc_status(
    *,
    rna_qc: pd.DataFrame | None,
    cyto_qc: pd.DataFrame | None,
    composition: pd.DataFrame,
    min_cells: int = 500,
    min_events: int = 1000,
    min_fraction_retained: float = 0.5,
    max_fraction_unknown: float = 0.3,
) -> pd.DataFrame:
    """One row per sample and modality with ``passed`` and, when it fails, every reason;
    samples excluded from the cohort (their per-sample QC row has ``status`` ``failed``) are
    ``excluded`` with the step, file and cause.

    ``rna_qc`` is ``results/qc/rna_qc.tsv`` (``n_cells_before``/``n_cells_after``),
    ``cyto_qc`` the gate counts of ``results/qc/cyto_qc.tsv`` (``all events``/``retained``),
    ``composition`` the long composition table (the ``unknown`` fraction).

    Examples
    --------
    >>> qc_status(rna_qc=rna, cyto_qc=None, composition=comp)  # doctest: +SKIP
    """
    rows = []
    failed = []  # samples excluded from the cohort (on_sample_failure: exclude)
    for table in (rna_qc, cyto_qc):
        if table is not None and "status" in table:
            bad = table["status"].eq("failed")
            for r in table[bad].drop_duplicates(["modality", "sample_id"]).itertuples():
                failed.append(
                    (r.sample_id, r.modality, f"excluded: {r.reason} ({r.step}, {r.file})")
                )
    if rna_qc is not None and "status" in rna_qc:
        rna_qc = rna_qc[~rna_qc["status"].eq("failed")]
    if cyto_qc is not None and "status" in cyto_qc:
        cyto_qc = cyto_qc[~cyto_qc["status"].eq("failed")]
    if rna_qc is not None and len(rna_qc):
        for r in rna_qc.itertuples():
            rows.append(
                ("rna", r.sample_id, int(r.n_cells_before), int(r.n_cells_after), min_cells)
            )
    if cyto_qc is not None and len(cyto_qc):
        counts = cyto_qc.pivot_table(
            index=["modality", "sample_id"], columns="gate", values="events", aggfunc="first"
        )
        for (modality, sample), r in counts.iterrows():
            rows.append((modality, sample, int(r["all events"]), int(r["retained"]), min_events))
    unknown = (
        composition[composition["cell_type"] == "unknown"]
        .groupby(["modality", "sample_id"])["fraction"]
        .sum()
    )
    out = []
    for modality, sample, n_in, n_kept, minimum in rows:
        frac = n_kept / n_in if n_in else 0.0
        unk = float(unknown.get((modality, sample), 0.0))
        unit = "cells" if modality == "rna" else "events"
        reasons = []
        if n_kept < minimum:
            reasons.append(f"{n_kept} {unit} after QC (< {minimum})")
        if frac < min_fraction_retained:
            reasons.append(f"{frac:.0%} of {unit} kept by QC (< {min_fraction_retained:.0%})")
        if unk > max_fraction_unknown:
            reasons.append(f"{unk:.0%} of {unit} not annotated (> {max_fraction_unknown:.0%})")
        out.append(
            (sample, modality, n_in, n_kept, frac, unk, not reasons, False, "; ".join(reasons))
        )
    for sample, modality, reason in failed:
        out.append((sample, modality, 0, 0, 0.0, float("nan"), False, True, reason))
    df = pd.DataFrame(out, columns=STATUS_COLUMNS)
    return df.sort_values(["modality", "sample_id"], ignore_index=True)
