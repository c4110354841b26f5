"""Failed samples: one bad sample must not cost a batch its cohort profile.

A :class:`SampleError` is a problem of one sample's data — an unreadable or damaged file, no
cells left after QC, no event passing the gates. With ``on_sample_failure: exclude`` (config,
the default) a per-sample step that meets one does not fail: :func:`per_sample` writes a
*failure record* in place of each of the step's outputs (an ``.h5ad`` with no cells and
``uns["failed"]``, a one-row table with ``status = failed`` and the reason, a figure that says
why), the steps after it pass the record on, and the cohort steps leave the sample out and
list it (``results/profile/qc_status.tsv``, the report, the run's last message). With
``stop`` the job fails, naming the sample, file and cause, as any other error.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

logger = logging.getLogger(__name__)

OnFailure = Literal["exclude", "stop"]
T = TypeVar("T")


class SampleError(ValueError):
    """One sample's data cannot be processed; the message names the sample, file and cause.

    ``step``: the stage that failed, where a rule runs several (recorded in the failure
    record instead of the rule's name)."""

    step: str | None = None


@dataclass(frozen=True)
class Failure:
    """Why a sample was excluded: where (``step``), which input ``file``, the ``reason``."""

    sample_id: str
    modality: str
    step: str
    file: str
    reason: str


def write_record(path: str | Path, failure: Failure) -> None:
    """Write ``failure`` in place of the output ``path``, in the output's own format."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = asdict(failure)
    if path.suffix == ".h5ad":
        import anndata as ad

        ad.AnnData(uns={"failed": record}).write_h5ad(path)
    elif path.suffix == ".h5":
        import h5py

        with h5py.File(path, "w") as f:
            f.attrs["failed"] = json.dumps(record)
    elif path.suffix == ".tsv":
        import pandas as pd

        pd.DataFrame([{**record, "status": "failed"}]).to_csv(path, sep="\t", index=False)
    elif path.suffix == ".png":
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(8, 2))
        ax.text(
            0.01, 0.5, f"{failure.sample_id}: excluded\n{failure.reason}", wrap=True, va="center"
        )
        ax.set_axis_off()
        fig.savefig(path, dpi=80)
        plt.close(fig)
    else:
        path.write_text(json.dumps(record))


def read_record(path: str | Path) -> Failure | None:
    """The failure record written in place of ``path``, or ``None`` for real data."""
    path = Path(path)
    if path.suffix in (".h5ad", ".h5") and path.is_file():
        import h5py

        try:
            with h5py.File(path, "r") as f:
                if "failed" in f.attrs:
                    return Failure(**json.loads(f.attrs["failed"]))
                if "uns/failed" in f:
                    from anndata.io import read_elem

                    return Failure(**{k: str(v) for k, v in read_elem(f["uns/failed"]).items()})
        except OSError:
            return None
    return None


def split_failed(paths: Sequence[str | Path]) -> tuple[list[str], list[Failure]]:
    """Cohort inputs: the real per-sample files, and the failure records among them."""
    good, failed = [], []
    for p in paths:
        rec = read_record(p)
        if rec is None:
            good.append(str(p))
        else:
            failed.append(rec)
            logger.warning(
                "sample %s (%s) excluded: %s failed: %s",
                rec.sample_id,
                rec.file,
                rec.step,
                rec.reason,
            )
    if not good:
        reasons = "; ".join(f"{f.sample_id}: {f.reason}" for f in failed)
        raise SampleError(f"every sample failed, nothing left for the cohort ({reasons})")
    return good, failed


def per_sample(
    step: str,
    *,
    inputs: tuple[str, ...],
    outputs: tuple[str, ...],
    file: str | None = None,
    modality: str | None = None,
) -> Callable[[Callable[..., T]], Callable[..., T | None]]:
    """Decorate a per-sample rule function so that a failing sample can be excluded.

    The wrapped function takes one more keyword, ``on_failure`` (``"stop"`` unless given; the
    workflow passes config ``on_sample_failure``). ``inputs`` / ``outputs`` / ``file`` name the
    function's arguments holding the input files, the output files and the raw data file
    (default: the first input); ``sample_id`` (and ``modality``, unless given) are arguments
    too. A failure record among the inputs (an earlier step excluded the sample) is passed on
    to the outputs without running the step; a :class:`SampleError` raised by it writes a new
    record, or propagates with ``on_failure="stop"``.
    """

    def decorate(fn: Callable[..., T]) -> Callable[..., T | None]:
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def wrapper(*args: Any, on_failure: OnFailure = "stop", **kwargs: Any) -> T | None:
            arg = signature.bind(*args, **kwargs).arguments
            ins = [arg[k] for k in inputs if arg.get(k)]
            outs = [arg[k] for k in outputs if arg.get(k)]
            upstream = next((r for r in map(read_record, ins) if r is not None), None)
            if upstream is not None:  # an earlier step excluded the sample: pass it on
                for out in outs:
                    write_record(out, upstream)
                logger.warning(
                    "sample %s was excluded by %s: %s",
                    upstream.sample_id,
                    upstream.step,
                    upstream.reason,
                )
                return None
            try:
                return fn(*args, **kwargs)
            except SampleError as err:
                if on_failure == "stop":
                    raise
                failure = Failure(
                    sample_id=str(arg["sample_id"]),
                    modality=modality or str(arg["modality"]),
                    step=err.step or step,
                    file=str(arg[file] if file else ins[0]),
                    reason=str(err),
                )
                for out in outs:  # (the writers leave no partial file: io.h5ad.atomic)
                    write_record(out, failure)
                logger.warning("sample %s excluded from the cohort: %s", failure.sample_id, err)
                return None

        return wrapper

    return decorate


def excluded_table(failures: Sequence[Failure]) -> Any:
    """The excluded samples as a table (``uns["excluded_samples"]`` of cohort files)."""
    import pandas as pd

    cols = [f.name for f in dataclasses.fields(Failure)]
    return pd.DataFrame([asdict(f) for f in failures], columns=cols)
