"""Helpers shared by the rule functions of every modality."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd


def save_figure(fig, path: str | Path) -> None:
    """Write a matplotlib figure as PNG and close it."""
    import matplotlib.pyplot as plt

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def concat_tables(tables: Sequence[str | Path], out: str | Path) -> pd.DataFrame:
    """Concatenate TSV tables with the same columns (per-sample rows into a cohort table)."""
    df = pd.concat([pd.read_csv(t, sep="\t") for t in tables], ignore_index=True)
    df.to_csv(out, sep="\t", index=False)
    return df
