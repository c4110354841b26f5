"""Memory-light ``.h5ad`` I/O for cohort steps.

Cohort files are written from their samples' files read lazily (:func:`lazy_matrix`,
dask arrays that anndata writes one block of rows at a time) and read one block of rows
at a time (:func:`iter_columns`), so a cohort step holds one block, not the cohort.
"""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata.io import read_elem, sparse_dataset, write_elem

#: rows per block where a sparse matrix (thousands of genes a row) is read block by block
BLOCK_ROWS = 10_000


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


def write_h5ad(adata: ad.AnnData, path: str | Path, *, nbytes: int | None = None) -> None:
    """``adata.write_h5ad(path)``, atomically (:func:`atomic`). Matrices that are dask
    arrays (:func:`lazy_matrix`: a cohort read lazily from its samples' files) are computed
    and written by anndata one block of rows at a time; ``nbytes``, the size expected on
    disk, is checked against the free space first (:func:`check_space`)."""
    if nbytes is not None:
        check_space(path, nbytes)
    with atomic(path) as tmp:
        adata.write_h5ad(tmp)


def _rows_of(elem: h5py.Group | h5py.Dataset, rows: slice | np.ndarray) -> Any:
    """The ``rows`` of one ``obs`` column (categorical, numeric or string) without reading
    the rest of it."""
    enc = elem.attrs.get("encoding-type", "")
    if enc == "categorical":
        return pd.Categorical.from_codes(
            elem["codes"][rows],
            categories=pd.Index(read_elem(elem["categories"])),
            ordered=bool(elem.attrs.get("ordered", False)),
        )
    if isinstance(elem, h5py.Dataset):
        return (elem.asstr() if enc == "string-array" else elem)[rows]
    return np.asarray(read_elem(elem))[rows]  # nullable arrays: small columns, read whole


def read_obs(
    path: str | Path,
    columns: Sequence[str] | None = None,
    *,
    rows: slice | np.ndarray | None = None,
    index: bool = True,
) -> pd.DataFrame:
    """``obs`` of an ``.h5ad`` without reading any matrix; only ``columns`` and only
    ``rows`` (a slice or increasing indices) when given. ``index=False`` leaves the obs
    names on disk (a ``RangeIndex`` over the rows read): a cohort of 100M events would
    otherwise hold 100M Python strings (~7 GB) to count or label them.
    """
    with h5py.File(path, "r") as f:
        obs = f["obs"]
        if columns is None and rows is None and index:
            return read_elem(obs)
        names = list(obs.attrs["column-order"]) if columns is None else list(columns)
        missing = [c for c in names if c not in obs]
        if missing:
            raise KeyError(f"{path}: obs has no column(s) {missing}")
        sel = slice(None) if rows is None else rows
        df = pd.DataFrame({c: _rows_of(obs[c], sel) for c in names})
        if index:
            df.index = pd.Index(_rows_of(obs[obs.attrs["_index"]], sel))
        elif not names:
            df = pd.DataFrame(index=pd.RangeIndex(len(obs[obs.attrs["_index"]][sel])))
        return df


def obs_blocks(path: str | Path, key: str = "sample_id") -> list[tuple[str, slice]]:
    """The rows of each value of ``obs[key]`` as ``(value, slice)``, in file order: cohort
    files are written one file (sample) after another, so every cohort step can map over
    them block by block. Raises when a value's rows are not contiguous."""
    with h5py.File(path, "r") as f:
        elem = f["obs"][key]
        if elem.attrs.get("encoding-type") == "categorical":
            codes = elem["codes"][:]
            names = np.asarray(read_elem(elem["categories"])).astype(str)
        else:
            names, codes = np.unique(np.asarray(read_elem(elem)).astype(str), return_inverse=True)
    starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]]) if len(codes) else []
    stops = [*starts[1:], len(codes)]
    blocks = [
        (str(names[codes[a]]), slice(int(a), int(b))) for a, b in zip(starts, stops, strict=True)
    ]
    if len({name for name, _ in blocks}) != len(blocks):
        raise ValueError(f"{path}: the rows of each {key} are not contiguous")
    return blocks


def read_uns(path: str | Path) -> dict[str, Any]:
    """``uns`` of an ``.h5ad`` without reading any matrix."""
    with h5py.File(path, "r") as f:
        return read_elem(f["uns"]) if "uns" in f else {}


def read_obsm(path: str | Path, key: str, rows: slice | np.ndarray | None = None) -> np.ndarray:
    """One ``obsm`` entry (only ``rows`` when given) of an ``.h5ad`` without reading any
    matrix (backed mode would load layers)."""
    with h5py.File(path, "r") as f:
        elem = f["obsm"][key]
        if rows is not None and isinstance(elem, h5py.Dataset):
            return np.asarray(elem[rows])
        return np.asarray(read_elem(elem))


def read_var(path: str | Path) -> pd.DataFrame:
    """``var`` of an ``.h5ad`` without reading any matrix."""
    with h5py.File(path, "r") as f:
        return read_elem(f["var"])


def iter_columns(
    path: str | Path,
    columns: Sequence[str],
    *,
    layer: str | None = None,
    rows: np.ndarray | slice | None = None,
    chunk_size: int | None = None,
) -> Iterator[sp.csr_matrix | np.ndarray]:
    """The ``columns`` (var names) of ``X`` or a layer, ``chunk_size`` rows at a time
    (default: 10,000 of a sparse matrix, whose rows hold thousands of genes; 50,000 of a
    dense one); only the rows ``rows`` (increasing indices, or a slice: one file's block)
    when given.

    Memory: one block of rows. A sparse matrix gives CSR blocks with int32 column indices
    (anndata writes a lazily computed matrix with int64 ones), a dense one (cytometry) arrays.
    """
    with h5py.File(path, "r") as f:
        var_names = pd.Index(read_elem(f["var"]).index)
        idx = var_names.get_indexer(list(columns))
        if (idx < 0).any():
            missing = [c for c, i in zip(columns, idx, strict=True) if i < 0]
            raise KeyError(f"{path}: genes not found: {missing[:10]}")
        elem = _matrix(f, path, layer)
        dense = isinstance(elem, h5py.Dataset)  # dense: cytometry events
        n = elem.shape[0] if dense else sparse_dataset(elem).shape[0]
        chunk_size = chunk_size or (50_000 if dense else BLOCK_ROWS)
        if isinstance(rows, slice):
            start, stop, _ = rows.indices(n)
            rows, n = None, stop  # read as whole-row slices from start
        else:
            start = 0
        if rows is not None:
            rows = np.asarray(rows, dtype=np.int64)
            if rows.size and (np.diff(rows) <= 0).any():
                raise ValueError("rows must be increasing")
        if rows is None:
            picks = [slice(a, min(a + chunk_size, n)) for a in range(start, n, chunk_size)]
        else:
            picks = [rows[a : a + chunk_size] for a in range(0, len(rows), chunk_size)]
        if dense:
            order = np.argsort(idx)
            back = np.argsort(order)
            for pick in picks:
                if rows is None:
                    yield elem[pick, np.sort(idx)][:, back]
                else:  # h5py takes one index list per read: whole rows, then the columns
                    yield elem[pick][:, idx]
            return
        ds = sparse_dataset(elem)
        whole = np.array_equal(idx, np.arange(len(var_names)))
        for pick in picks:
            block = sp.csr_matrix(ds[pick])
            small = max(len(var_names), block.nnz) < np.iinfo(np.int32).max
            if block.indices.dtype != np.int32 and small:
                block.indices = block.indices.astype(np.int32)
                block.indptr = block.indptr.astype(np.int32)
            yield block if whole else block[:, idx]


def read_columns(
    path: str | Path,
    columns: Sequence[str],
    *,
    layer: str | None = None,
    rows: np.ndarray | slice | None = None,
    chunk_size: int | None = None,
) -> sp.csr_matrix | np.ndarray:
    """The ``columns`` of ``X`` or a layer as one matrix, read block by block
    (:func:`iter_columns`): peak memory one block plus the result, not the whole matrix."""
    blocks = list(iter_columns(path, columns, layer=layer, rows=rows, chunk_size=chunk_size))
    if blocks and isinstance(blocks[0], np.ndarray):
        return np.concatenate(blocks)
    if blocks:
        return sp.vstack(blocks, format="csr")
    with h5py.File(path, "r") as f:  # no rows: an empty matrix of the element's kind
        elem = _matrix(f, path, layer)
        if isinstance(elem, h5py.Dataset):
            return np.zeros((0, len(columns)), dtype=elem.dtype)
    return sp.csr_matrix((0, len(columns)))


def _obs_template(
    f: h5py.File,
    categories: Mapping[str, Sequence[str]],
    integers: Mapping[str, Any],
    n_obs: int,
) -> h5py.Group:
    """An ``obs`` of ``n_obs`` rows with the categorical ``categories`` and the ``integers``
    columns (name → dtype), anndata's own encoding, filled block by block afterwards; its
    names are the row numbers, fixed-width ASCII, compressed (~2 bytes a row, where a
    variable-length string takes ~40 and 100M of them 4 GB per file)."""
    empty = pd.DataFrame(
        {
            **{c: pd.Categorical([], categories=list(cats)) for c, cats in categories.items()},
            **{c: np.zeros(0, dtype=dtype) for c, dtype in integers.items()},
        },
        index=pd.Index([], dtype=object),
    )
    write_elem(f, "obs", empty, dataset_kwargs={"maxshape": (None,), "chunks": (65536,)})
    obs = f["obs"]
    attrs = dict(obs["_index"].attrs)
    del obs["_index"]
    chunk = min(max(n_obs, 1), 1 << 20)
    width = f"S{len(str(max(n_obs - 1, 0)))}"
    names = obs.create_dataset("_index", (n_obs,), dtype=width, chunks=(chunk,), compression="gzip")
    for start in range(0, n_obs, chunk):  # a chunk at a time: 100M names would take 1.7 GB
        names[start : start + chunk] = np.arange(start, min(start + chunk, n_obs)).astype(width)
    names.attrs.update(attrs)
    for ds in (*(obs[c]["codes"] for c in categories), *(obs[c] for c in integers)):
        ds.resize((n_obs,))
    return obs


def write_dense_h5ad(
    path: str | Path,
    blocks: Iterable[tuple[np.ndarray, pd.DataFrame]],
    *,
    n_obs: int,
    var: pd.DataFrame,
    categories: Mapping[str, Sequence[str]],
    integers: Mapping[str, Any] | None = None,
    uns: Mapping[str, Any] | None = None,
    layers: Sequence[str] = (),
) -> None:
    """Write a dense float32 ``.h5ad`` from ``(X, obs)`` row blocks (and the same number of
    extra arrays per block for ``layers``), one block in memory at a time.

    ``obs`` has the columns of ``categories`` (categorical, with those categories) and of
    ``integers`` (name → integer dtype, e.g. an event's number in its file); they are
    written block by block, so the cohort's ``obs`` is never held whole. The ``obs_names``
    are the row numbers (``"0"``, ``"1"``, …): no string per row is built, and the blocks'
    own names are not kept (a row is found again by its columns, e.g. sample and event).
    A failure leaves no file behind.
    """
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
            integers = dict(integers or {})
            obs_g = _obs_template(f, categories, integers, n_obs)
            cols = {c: (pd.Index(list(cats)), obs_g[c]["codes"]) for c, cats in categories.items()}
            row = 0
            for X, obs, *extra in blocks:
                end = row + X.shape[0]
                if end > n_obs or len(obs) != X.shape[0]:
                    raise ValueError(f"{path}: block at row {row} does not fit ({n_obs} rows)")
                dsets["X"][row:end] = X
                for name, M in zip(layers, extra, strict=True):
                    dsets[name][row:end] = M
                for c in integers:
                    obs_g[c][row:end] = obs[c].to_numpy()
                for c, (cats, codes) in cols.items():
                    codes[row:end] = cats.get_indexer(obs[c].astype(str))
                row = end
            if row != n_obs:
                raise ValueError(f"{path}: expected {n_obs} rows, blocks gave {row}")
            write_elem(f, "var", var)
            for key in ("obsm", "varm", "obsp", "varp"):
                write_elem(f, key, {})
            write_elem(f, "uns", dict(uns or {}))


def _same_names(a: h5py.Dataset, b: h5py.Dataset, chunk: int = 1_000_000) -> bool:
    """Whether two obs-name datasets are equal, compared a chunk at a time."""
    return a.shape == b.shape and all(
        np.array_equal(a[i : i + chunk], b[i : i + chunk]) for i in range(0, a.shape[0], chunk)
    )


LINKED = ("X", "layers")
"""The elements :func:`derive_h5ad` links to the matrices' file instead of copying."""


def _link_matrices(
    matrices_from: str | Path, f: h5py.File, out: Path, names: h5py.Dataset, obs_from
) -> None:
    """Into the open ``f`` (to become ``out``): ``matrices_from``'s :data:`LINKED` elements as
    external links relative to ``out``'s folder (a results tree moved whole still reads; a
    link in ``matrices_from`` is followed to its own file), and its other elements but
    ``obs`` and ``uns`` copied."""
    with h5py.File(matrices_from, "r") as mat:
        old = mat["obs"]
        if not _same_names(old[old.attrs["_index"]], names):
            raise ValueError(f"{out}: the cells of {obs_from} are not {matrices_from}'s")
        for key, value in mat.attrs.items():
            f.attrs[key] = value
        home = Path(matrices_from).resolve().parent
        for key in mat:
            if key in LINKED:
                link = mat.get(key, getlink=True)
                target, path = (
                    (home / link.filename, link.path)
                    if isinstance(link, h5py.ExternalLink)
                    else (home / Path(matrices_from).name, f"/{key}")
                )
                rel = os.path.relpath(target, out.resolve().parent)
                f[key] = h5py.ExternalLink(rel, path)
            elif key not in ("obs", "uns"):
                mat.copy(mat[key], f, key)


def materialize(path: str | Path, out: str | Path) -> None:
    """Write ``out``: ``path`` with its linked matrices (:func:`derive_h5ad`) copied in, a
    file that stands alone (to send or archive without the results tree). Atomic."""
    with atomic(out) as tmp, h5py.File(path, "r") as src, h5py.File(tmp, "w") as f:
        for key, value in src.attrs.items():
            f.attrs[key] = value
        for key in src:
            src.copy(_element(src, key, path), f, key, expand_external=True)


def _element(f: h5py.File, key: str, path: str | Path) -> h5py.Group | h5py.Dataset:
    """``f[key]``; a link whose file is gone raises :class:`FileNotFoundError` naming it."""
    try:
        return f[key]
    except KeyError:
        link = f.get(key, getlink=True)
        if not isinstance(link, h5py.ExternalLink):
            raise
        target = Path(path).resolve().parent / link.filename
        raise FileNotFoundError(
            f"{path}: its {key} is a link to {link.filename} ({target}), which cannot be "
            f"read: keep the results folder together, or rerun the step that wrote {path}"
        ) from None


def _matrix(f: h5py.File, path: str | Path, layer: str | None) -> h5py.Group | h5py.Dataset:
    """``X`` or the layer ``layer`` of the open ``f`` (:func:`_element`: a missing link target
    is named)."""
    return _element(f, "X", path) if layer is None else _element(f, "layers", path)[layer]


def matrix_nbytes(path: str | Path, layer: str | None = None) -> int:
    """Bytes ``X`` or the layer ``layer`` takes in memory (a sparse matrix's three arrays)."""
    with h5py.File(path, "r") as f:
        elem = _matrix(f, path, layer)
        parts = elem.values() if isinstance(elem, h5py.Group) else [elem]
        return int(sum(ds.size * ds.dtype.itemsize for ds in parts))


@contextmanager
def layer_as_X(
    path: str | Path, layer: str, *, obs: Sequence[str] = (), backed: bool = True
) -> Iterator[ad.AnnData]:
    """``path``'s layer ``layer`` as the ``X`` of an AnnData with ``var`` and the ``obs``
    columns: opened in backed mode (rows read from disk as they are used: scvi-tools trains
    from it without loading the matrix) or, with ``backed=False``, read into memory.
    Backed, nothing is copied: a small temporary file in the temporary folder (``TMPDIR``,
    never beside the results, which a killed job would leave it among) links its ``X`` to
    the layer, and is removed when the block ends."""
    import tempfile

    path = Path(path).resolve()
    if not backed:
        with h5py.File(path, "r") as f:
            X, var = read_elem(_matrix(f, path, layer)), read_elem(f["var"])
        yield ad.AnnData(X=X, obs=read_obs(path, columns=list(obs)), var=var)
        return
    with tempfile.TemporaryDirectory(prefix="immunoprofiler_backed_") as tmp:
        view = Path(tmp) / "view.h5ad"
        with h5py.File(path, "r") as src, h5py.File(view, "w") as f:
            _matrix(src, path, layer)  # a missing layer or link target is named here
            for key, value in src.attrs.items():
                f.attrs[key] = value
            f["X"] = h5py.ExternalLink(str(path), f"/layers/{layer}")
            write_elem(f, "obs", read_obs(path, columns=list(obs)))
            write_elem(f, "var", read_elem(src["var"]))
            for key in ("layers", "obsm", "varm", "obsp", "varp", "uns"):
                write_elem(f, key, {})
        adata = ad.read_h5ad(view, backed="r")
        try:
            yield adata
        finally:
            adata.file.close()


def lazy_matrix(
    path: str | Path,
    layer: str | None = None,
    *,
    columns: pd.Index | None = None,
    chunk_size: int = BLOCK_ROWS,
) -> Any:
    """``path``'s ``X`` (or ``layer``) as a dask array of ``chunk_size``-row blocks, each read
    from the file when computed (anndata's ``read_elem_lazy``; no file is held open), with
    the columns in the order of the var names ``columns`` when given."""
    from anndata.experimental import read_elem_lazy

    with h5py.File(path, "r") as f:
        X = _matrix(f, path, layer)
        n_vars = X.attrs["shape"][1] if isinstance(X, h5py.Group) else X.shape[1]
        lazy = read_elem_lazy(X, chunks=(chunk_size, int(n_vars)))
        names = pd.Index(read_elem(f["var"]).index) if columns is not None else None
    if columns is None or names.equals(columns):
        return lazy
    at = names.get_indexer(columns)
    if (at < 0).any():
        missing = list(columns[at < 0][:5])
        raise KeyError(f"{path}: var has no {missing} ({(at < 0).sum()} genes missing)")
    return lazy[:, at]


@contextmanager
def lazy_X(
    path: str | Path, *, obs: Sequence[str] = (), chunk_size: int = BLOCK_ROWS
) -> Iterator[ad.AnnData]:
    """An AnnData whose ``X`` is ``path``'s read lazily (:func:`lazy_matrix`), with ``var``
    and the ``obs`` columns; for scanpy functions that take dask arrays (``pca``)."""
    yield ad.AnnData(
        X=lazy_matrix(path, chunk_size=chunk_size),
        obs=read_obs(path, columns=list(obs)),
        var=read_var(path),
    )


@dataclass
class ObsBlocks:
    """``obs`` columns computed block by block (one file's rows at a time), never held
    for all rows: ``columns`` maps a name to its categories (a categorical column; the
    blocks give codes into them, and categories no row has are dropped at the end, as
    pandas' ``remove_unused_categories``) or to a numpy dtype (plain values); ``blocks``
    gives ``(rows, {name: values})`` with ``rows`` a slice, covering every row once."""

    columns: Mapping[str, Sequence[str] | np.dtype]
    blocks: Iterable[tuple[slice, Mapping[str, np.ndarray]]]


def _empty_column(group: h5py.Group, name: str, kind: Sequence[str] | np.dtype, n: int):
    """A resizable column of ``n`` rows in anndata's encoding; its dataset of values."""
    chunks = {"maxshape": (None,), "chunks": (min(max(n, 1), 65536),)}
    if isinstance(kind, np.dtype):
        write_elem(group, name, np.zeros(0, dtype=kind), dataset_kwargs=chunks)
        ds = group[name]
    else:
        empty = pd.Categorical([], categories=pd.Index(list(kind), dtype=object))
        write_elem(group, name, empty, dataset_kwargs=chunks)
        ds = group[name]["codes"]
    ds.resize((n,))
    return ds


def _write_obs_blocks(obs_g: h5py.Group, spec: ObsBlocks, n: int, out: str | Path) -> list[str]:
    """Fill :class:`ObsBlocks` columns into ``obs_g`` (replacing same-named ones)."""
    for name in spec.columns:
        if name in obs_g:
            del obs_g[name]
    targets = {name: _empty_column(obs_g, name, kind, n) for name, kind in spec.columns.items()}
    used = {
        name: np.zeros(len(kind), dtype=bool)
        for name, kind in spec.columns.items()
        if not isinstance(kind, np.dtype)
    }
    filled = 0
    for rows, values in spec.blocks:
        for name, ds in targets.items():
            v = np.asarray(values[name])
            if len(v) != rows.stop - rows.start:
                raise ValueError(f"{out}: obs column {name}: block {rows} has {len(v)} rows")
            ds[rows] = v
            if name in used and len(v):
                used[name][np.unique(v)] = True
        filled += rows.stop - rows.start
    if filled != n:
        raise ValueError(f"{out}: obs blocks gave {filled} rows, not {n}")
    for name, seen in used.items():
        if seen.all():
            continue
        cats = np.asarray(list(spec.columns[name]), dtype=object)
        remap = np.cumsum(seen) - 1
        obs_g.move(name, f"{name}.unpruned")
        old = obs_g[f"{name}.unpruned"]["codes"]
        new = _empty_column(obs_g, name, list(cats[seen]), n)
        for a in range(0, n, 1 << 20):
            new[a : a + (1 << 20)] = remap[old[a : a + (1 << 20)]]
        del obs_g[f"{name}.unpruned"]
    return list(spec.columns)


def derive_h5ad(
    out: str | Path,
    *,
    obs_from: str | Path,
    add_obs: Mapping[str, Any] | None = None,
    obs_blocks: ObsBlocks | None = None,
    matrices_from: str | Path | None = None,
    obsm: Mapping[str, np.ndarray | tuple[np.ndarray, np.ndarray]] | None = None,
    uns: Mapping[str, Any] | None = None,
) -> None:
    """Write ``out`` from files already on disk, holding only what changes.

    ``obs`` and ``obsm`` are ``obs_from``'s, copied inside HDF5 (the names never become
    Python strings), with the ``add_obs`` columns (whole) and ``obs_blocks`` columns
    (:class:`ObsBlocks`: written block by block) and ``obsm`` entries added or replaced;
    with ``matrices_from`` (its cells checked to be ``obs_from``'s), ``X`` and the layers are
    HDF5 external links to that file's (:data:`LINKED`: no second copy of the cohort's
    matrices; anndata and h5py read them as if they were here) and its ``var``, ``obsm``,
    ``obsp``, ``varm`` and ``varp`` are copied; without it, the file has no matrix. An
    ``obsm`` entry is an array or ``(rows, values)``: NaN outside the increasing ``rows``,
    written without an all-cells array. ``uns`` replaces the source's.
    Atomic (:func:`atomic`); :func:`materialize` writes a copy that holds the matrices.
    """
    with atomic(out) as tmp:
        with h5py.File(obs_from, "r") as src, h5py.File(tmp, "w") as f:
            index = src["obs"].attrs["_index"]
            if matrices_from is None:
                f.attrs["encoding-type"] = "anndata"
                f.attrs["encoding-version"] = "0.1.0"
                write_elem(f, "var", pd.DataFrame(index=pd.Index([], dtype=str)))
                for key in ("layers", "obsm", "varm", "obsp", "varp"):
                    write_elem(f, key, {})
            else:
                _link_matrices(matrices_from, f, Path(out), src["obs"][index], obs_from)
            src.copy(src["obs"], f, "obs")
            for key in src["obsm"] if "obsm" in src else ():
                if key in f["obsm"]:
                    del f["obsm"][key]
                src.copy(src["obsm"][key], f["obsm"], key)
            obs_g = f["obs"]
            n = obs_g[index].shape[0]
            order = [str(c) for c in obs_g.attrs.get("column-order", [])]
            for name, values in (add_obs or {}).items():
                if len(values) != n:
                    raise ValueError(f"{out}: obs column {name} has {len(values)} rows, not {n}")
                if name in obs_g:
                    del obs_g[name]
                write_elem(obs_g, name, values)
                order = [*(c for c in order if c != name), name]
            if obs_blocks is not None:
                added = _write_obs_blocks(obs_g, obs_blocks, n, out)
                order = [*(c for c in order if c not in added), *added]
            obs_g.attrs["column-order"] = order
            for key, value in (obsm or {}).items():
                if key in f["obsm"]:
                    del f["obsm"][key]
                if isinstance(value, tuple):
                    rows, values = value
                    ds = f["obsm"].create_dataset(
                        key, (n, values.shape[1]), dtype="f4", fillvalue=np.nan, chunks=True
                    )
                    ds.attrs["encoding-type"] = "array"
                    ds.attrs["encoding-version"] = "0.2.0"
                    if len(rows):
                        ds[np.asarray(rows)] = np.asarray(values, dtype=np.float32)
                else:
                    write_elem(f["obsm"], key, np.asarray(value))
            if uns is not None:
                if "uns" in f:
                    del f["uns"]
                write_elem(f, "uns", dict(uns))
