"""Memory-light ``.h5ad`` I/O for cohort steps.

Cohort files are written one sample at a time (:func:`write_streamed`) and read
one block of rows at a time (:func:`read_columns`), so a cohort step holds one
sample's matrix, not the whole cohort's.
"""

from __future__ import annotations

import errno
import shutil
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata.io import read_elem, sparse_dataset, write_elem


class DiskFullError(OSError):
    """The disk filled while an output was written (not a problem of the sample: the job
    fails, whatever ``on_sample_failure`` says, and can be rerun once there is space)."""


@contextmanager
def atomic(path: str | Path) -> Iterator[Path]:
    """Write ``path`` atomically: the block writes the temporary ``<path>.partial`` it is
    given, which is renamed to ``path`` when the block succeeds and removed when it fails, so
    a job killed or a disk filled during the write never leaves a truncated file that looks
    complete. A full disk becomes :class:`DiskFullError` naming the file and the free space.
    """
    path = Path(path)
    tmp = path.with_name(path.name + ".partial")
    try:
        yield tmp
        tmp.replace(path)
    except OSError as err:
        if err.errno != errno.ENOSPC or isinstance(err, DiskFullError):
            raise
        tmp.unlink(missing_ok=True)  # before measuring: the free space once it is gone
        free = shutil.disk_usage(path.parent).free / 2**20
        raise DiskFullError(
            errno.ENOSPC,
            f"{path}: no space left on the device while writing it ({free:.0f} MiB free "
            f"there); nothing was kept of this file — free space and rerun the same command",
        ) from err
    finally:
        tmp.unlink(missing_ok=True)


def check_space(path: str | Path, nbytes: int) -> None:
    """Raise :class:`DiskFullError` before writing ``nbytes`` (plus a margin) to ``path`` where
    the disk has less free: HDF5 reports a full disk during chunked writes only when the
    dataset objects are freed (exceptions Python ignores, then a crash), so the writers that
    append to an open HDF5 file check first."""
    path = Path(path)
    free = shutil.disk_usage(path.parent).free
    if free < nbytes * 1.1 + 2**20:
        raise DiskFullError(
            errno.ENOSPC,
            f"{path}: no space left on the device for it ({free / 2**20:.1f} MiB free there, "
            f"{nbytes / 2**20:.1f} MiB more to write); free space and rerun the same command",
        )


def write_h5ad(adata: ad.AnnData, path: str | Path) -> None:
    """``adata.write_h5ad(path)``, atomically (:func:`atomic`)."""
    with atomic(path) as tmp:
        adata.write_h5ad(tmp)


def read_obs(path: str | Path, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """``obs`` of an ``.h5ad`` without reading any matrix; only ``columns`` when given."""
    with h5py.File(path, "r") as f:
        obs = f["obs"]
        if columns is None:
            return read_elem(obs)
        missing = [c for c in columns if c not in obs]
        if missing:
            raise KeyError(f"{path}: obs has no column(s) {missing}")
        index = read_elem(obs[obs.attrs["_index"]])
        return pd.DataFrame({c: read_elem(obs[c]) for c in columns}, index=pd.Index(index))


def read_uns(path: str | Path) -> dict[str, Any]:
    """``uns`` of an ``.h5ad`` without reading any matrix."""
    with h5py.File(path, "r") as f:
        return read_elem(f["uns"]) if "uns" in f else {}


def read_obsm(path: str | Path, key: str) -> np.ndarray:
    """One ``obsm`` entry of an ``.h5ad`` without reading any matrix (backed mode would load layers)."""
    with h5py.File(path, "r") as f:
        return np.asarray(read_elem(f["obsm"][key]))


def read_var(path: str | Path) -> pd.DataFrame:
    """``var`` of an ``.h5ad`` without reading any matrix."""
    with h5py.File(path, "r") as f:
        return read_elem(f["var"])


def read_columns(
    path: str | Path,
    columns: Sequence[str],
    *,
    layer: str | None = None,
    rows: np.ndarray | None = None,
    chunk_size: int = 50_000,
) -> sp.csr_matrix | np.ndarray:
    """Read the ``columns`` (var names) of ``X`` or a layer, ``chunk_size`` rows at a time;
    only the (increasing) row indices ``rows`` when given.

    Peak memory is one block of rows plus the result, not the whole matrix. A sparse
    matrix gives CSR, a dense one (cytometry) an array.
    """
    with h5py.File(path, "r") as f:
        var_names = pd.Index(read_elem(f["var"]).index)
        idx = var_names.get_indexer(list(columns))
        if (idx < 0).any():
            missing = [c for c, i in zip(columns, idx, strict=True) if i < 0]
            raise KeyError(f"{path}: genes not found: {missing[:10]}")
        elem = f["X"] if layer is None else f["layers"][layer]
        dense = isinstance(elem, h5py.Dataset)  # dense: cytometry events
        n = elem.shape[0] if dense else sparse_dataset(elem).shape[0]
        if rows is not None:
            rows = np.asarray(rows, dtype=np.int64)
            if rows.size and (np.diff(rows) <= 0).any():
                raise ValueError("rows must be increasing")
        picks = [
            slice(start, min(start + chunk_size, n))
            if rows is None
            else rows[start : start + chunk_size]
            for start in range(0, n if rows is None else len(rows), chunk_size)
        ]
        if dense:
            order = np.argsort(idx)
            back = np.argsort(order)
            if rows is None:
                blocks = [elem[pick, np.sort(idx)][:, back] for pick in picks]
            else:  # h5py takes one index list per read: whole rows, then the columns
                blocks = [elem[pick][:, idx] for pick in picks]
            return np.concatenate(blocks or [np.zeros((0, len(idx)), dtype=elem.dtype)])
        ds = sparse_dataset(elem)
        blocks = [sp.csr_matrix(ds[pick])[:, idx] for pick in picks]
    return sp.vstack(blocks, format="csr") if blocks else sp.csr_matrix((0, len(idx)))


class StreamedH5ad:
    """An ``.h5ad`` written one block of rows at a time (same ``var`` for every block).

    ``X`` and each of ``layers`` are appended block by block; ``obs`` (small) is
    concatenated and written on :meth:`close`, with ``obsm`` entries that every block has.

    Examples
    --------
    >>> with StreamedH5ad("cohort.h5ad", var=var) as out:  # doctest: +SKIP
    ...     for part in samples:
    ...         out.append(part)
    """

    def __init__(
        self,
        path: str | Path,
        *,
        var: pd.DataFrame,
        uns: Mapping[str, Any] | None = None,
        layers: Sequence[str] = ("counts",),
    ) -> None:
        self.path, self.var, self.uns, self.layers = Path(path), var, dict(uns or {}), tuple(layers)
        self._obs: list[pd.DataFrame] = []
        self.obs: pd.DataFrame | None = None  # set by close()
        self._obsm: dict[str, list[np.ndarray]] = {}
        # written under a temporary name and renamed by close() (:func:`atomic`): a killed
        # job or a full disk leaves no truncated file that looks complete
        self._atomic = atomic(self.path)
        self._f = h5py.File(self._atomic.__enter__(), "w")
        self._f.attrs["encoding-type"] = "anndata"
        self._f.attrs["encoding-version"] = "0.1.0"
        write_elem(self._f, "layers", {})

    def append(self, part: ad.AnnData) -> None:
        """Append the rows of ``part`` (its genes must equal ``var``)."""
        if list(part.var_names) != list(self.var.index):
            raise ValueError(f"{self.path}: block {len(self._obs)} has different genes than var")
        first = not self._obs
        given = {"X": part.X, **{f"layers/{k}": part.layers[k] for k in self.layers}}
        mats = {key: sp.csr_matrix(m, dtype=np.float32) for key, m in given.items()}
        check_space(
            self.path,
            sum(m.data.nbytes + m.indices.nbytes + m.indptr.nbytes for m in mats.values()),
        )
        for key, m in mats.items():
            if first:
                parent, _, name = key.rpartition("/")
                write_elem(self._f[parent] if parent else self._f, name, m)
            else:
                sparse_dataset(self._f[key]).append(m)
        self._obs.append(part.obs)
        for k, v in part.obsm.items():
            self._obsm.setdefault(k, []).append(np.asarray(v))

    def close(self) -> pd.DataFrame:
        """Write ``obs``, ``var``, ``obsm`` and ``uns``; return the ``obs`` written."""
        try:
            obs = self._write_tail()
            self._f.close()
        except BaseException as err:
            self._abort(err)
            raise
        self._atomic.__exit__(None, None, None)  # the rename
        return obs

    def _write_tail(self) -> pd.DataFrame:
        f = self._f
        if not self._obs:
            raise ValueError(f"{self.path}: nothing to write")
        obs = pd.concat(self._obs, join="outer")
        for col in obs.columns:
            if obs[col].dtype == object:
                obs[col] = obs[col].astype(str).astype("category")
        write_elem(f, "obs", obs)
        write_elem(f, "var", self.var)
        n = len(self._obs)
        write_elem(f, "obsm", {k: np.concatenate(v) for k, v in self._obsm.items() if len(v) == n})
        for key in ("varm", "obsp", "varp"):
            write_elem(f, key, {})
        write_elem(f, "uns", self.uns)
        self.obs = obs
        return obs

    def _abort(self, err: BaseException) -> None:
        """Close and remove the partial file (a full disk re-raised as DiskFullError)."""
        with suppress(Exception):  # a close that failed once (full disk) may fail again
            self._f.close()
        self._atomic.__exit__(type(err), err, err.__traceback__)

    def __enter__(self) -> StreamedH5ad:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:  # leave no half-written file behind
            self._abort(exc)


def write_streamed(
    path: str | Path,
    parts: Iterable[ad.AnnData],
    *,
    var: pd.DataFrame,
    uns: Mapping[str, Any] | None = None,
    layers: Sequence[str] = ("counts",),
) -> pd.DataFrame:
    """Write the row blocks ``parts`` into one ``.h5ad`` without holding them all (see
    :class:`StreamedH5ad`). Returns the ``obs`` written."""
    out = StreamedH5ad(path, var=var, uns=uns, layers=layers)
    with out:
        for part in parts:
            out.append(part)
    return out.obs


def write_dense_h5ad(
    path: str | Path,
    blocks: Iterable[tuple[np.ndarray, pd.DataFrame]],
    *,
    n_obs: int,
    var: pd.DataFrame,
    uns: Mapping[str, Any] | None = None,
    layers: Sequence[str] = (),
) -> pd.DataFrame:
    """Write a dense float32 ``.h5ad`` from ``(X, obs)`` row blocks (and the same number of
    extra arrays per block for ``layers``), one block in memory at a time. Returns obs.

    A failure leaves no file behind.
    """
    obs_parts = []
    check_space(path, 4 * n_obs * len(var) * (1 + len(layers)))
    with atomic(path) as tmp:
        with h5py.File(tmp, "w") as f:
            f.attrs["encoding-type"] = "anndata"
            f.attrs["encoding-version"] = "0.1.0"
            shape = (n_obs, len(var))
            chunks = (min(max(n_obs, 1), 16384), max(len(var), 1))
            dsets = {"X": f.create_dataset("X", shape, dtype="f4", chunks=chunks)}
            write_elem(f, "layers", {})
            for name in layers:
                dsets[name] = f["layers"].create_dataset(name, shape, dtype="f4", chunks=chunks)
            for name in ("X", *layers):
                ds = dsets[name]
                ds.attrs["encoding-type"] = "array"
                ds.attrs["encoding-version"] = "0.2.0"
            row = 0
            for X, obs, *extra in blocks:
                end = row + X.shape[0]
                dsets["X"][row:end] = X
                for name, M in zip(layers, extra, strict=True):
                    dsets[name][row:end] = M
                obs_parts.append(obs)
                row = end
            if row != n_obs:
                raise ValueError(f"{path}: expected {n_obs} rows, blocks gave {row}")
            obs = pd.concat(obs_parts) if obs_parts else pd.DataFrame(index=pd.Index([], dtype=str))
            for col in obs.columns:
                if obs[col].dtype == object:
                    obs[col] = pd.Categorical(obs[col])
            write_elem(f, "obs", obs)
            write_elem(f, "var", var)
            write_elem(f, "obsm", {})
            write_elem(f, "varm", {})
            write_elem(f, "obsp", {})
            write_elem(f, "varp", {})
            write_elem(f, "uns", dict(uns or {}))
    return obs


def update_h5ad(
    path: str | Path,
    *,
    obs: pd.DataFrame | None = None,
    obsm: Mapping[str, np.ndarray] | None = None,
    uns: Mapping[str, Any] | None = None,
) -> None:
    """Replace ``obs``, add ``obsm`` entries and replace ``uns`` in an ``.h5ad`` in place.

    The matrices are not read: this is how the annotated cohort file gets its
    labels and embeddings without loading ``X``.
    """
    with h5py.File(path, "r+") as f:
        if obs is not None:
            old = read_elem(f["obs"])
            if not old.index.equals(obs.index):
                raise ValueError(f"{path}: new obs does not match the file's cells")
            del f["obs"]
            write_elem(f, "obs", obs)
        for k, v in (obsm or {}).items():
            if f"obsm/{k}" in f:
                del f[f"obsm/{k}"]
            write_elem(f["obsm"], k, np.asarray(v))
        if uns is not None:
            del f["uns"]
            write_elem(f, "uns", dict(uns))


def write_annotated(
    source: str | Path,
    out: str | Path,
    *,
    obs: pd.DataFrame,
    obsm: Mapping[str, np.ndarray],
    uns: Mapping[str, Any],
) -> None:
    """The annotated cohort file: ``source`` (the normalised cohort, matrices untouched) with
    ``obs`` replaced, ``obsm`` entries added and ``uns`` replaced.

    Written atomically (:func:`atomic`): a failure leaves neither ``out`` nor a partial file.
    """
    with atomic(out) as tmp:
        shutil.copyfile(source, tmp)
        update_h5ad(tmp, obs=obs, obsm=obsm, uns=uns)
