"""scRNA-seq counts: readers for 10x HDF5 (Cell Ranger 1/2 and >= 3), 10x matrix folders and
.h5ad; writers for the Cell Ranger ≥ 3 HDF5 and MEX layouts (:func:`write_10x_h5`,
:func:`write_10x_mtx`).

Whatever the input, :func:`read_rna` returns the same AnnData:

- ``layers["counts"]``: raw integer counts, CSR float32; ``X`` left empty
  (``None``) in per-sample files so the counts are stored once;
- ``obs_names``: ``<sample_id>_<barcode>``, ``obs["barcode"]`` the original barcode;
- ``var_names``: gene symbols made unique, ``var["gene_ids"]`` and ``var["feature_types"]``;
- ``obsm["protein"]``: Antibody Capture (ADT) counts, with names in ``uns["protein_names"]``.
"""

from __future__ import annotations

import gzip
import logging
from pathlib import Path

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import scipy.io
import scipy.sparse as sp

from ..failures import SampleError
from .sizing import mtx_size, open_mtx

logger = logging.getLogger(__name__)

GEX = "Gene Expression"
ADT = "Antibody Capture"


class InputFormatError(SampleError):
    """An input file is not in a supported format or does not hold raw counts."""


def _first(folder: Path, *names: str) -> Path | None:
    for name in names:
        for suffix in (".gz", ""):
            p = folder / f"{name}{suffix}"
            if p.exists():
                return p
    return None


def _matrix_folder(path: Path, genome: str | None) -> Path:
    if _first(path, "matrix.mtx"):
        return path
    found = sorted({p.parent for pat in ("matrix.mtx", "matrix.mtx.gz") for p in path.rglob(pat)})
    if not found:
        raise InputFormatError(f"{path}: no matrix.mtx or matrix.mtx.gz below this folder")
    if genome is not None:
        found = [f for f in found if f.name == genome]
        if not found:
            raise InputFormatError(f"{path}: no matrix folder for genome '{genome}'")
    if len(found) > 1:
        names = ", ".join(str(f.relative_to(path)) for f in found)
        raise InputFormatError(f"{path}: several matrix folders ({names}); set rna.genome")
    return found[0]


def _read_table(path: Path, what: str) -> pd.DataFrame:
    try:
        return pd.read_csv(path, sep="\t", header=None, dtype=str, compression="infer")
    except pd.errors.EmptyDataError:
        raise InputFormatError(f"{path}: holds no {what} (empty file)") from None
    except (OSError, EOFError, UnicodeDecodeError, pd.errors.ParserError) as err:
        raise InputFormatError(f"{path}: cannot be read ({type(err).__name__}: {err})") from err


def read_mtx(path: str | Path) -> sp.coo_matrix:
    """A MatrixMarket coordinate file (plain or gzipped) as a sparse matrix.

    The values are parsed as numbers whatever the header's field says, so a file declared
    ``integer`` that holds fractions is seen as such (``scipy.io.mmread`` truncates them).
    Entries outside the declared shape, or fewer / more entries than declared, are errors.
    """
    path = Path(path)
    try:
        with open_mtx(path) as fh:
            header = fh.readline().decode("latin-1").split()
            if (
                len(header) < 4
                or header[0].lower() != "%%matrixmarket"
                or header[2].lower() != "coordinate"
            ):
                raise InputFormatError(
                    f"{path}: not a MatrixMarket coordinate file (header {' '.join(header)!r})"
                )
            n_rows, n_cols, nnz = mtx_size(fh)
            pattern = header[3].lower() == "pattern"
            entries = (
                pd.read_csv(
                    fh, sep=r"\s+", header=None, comment="%", dtype=np.float64, engine="c"
                ).to_numpy()
                if nnz
                else np.zeros((0, 2 if pattern else 3))
            )
    except InputFormatError:
        raise
    except (OSError, EOFError, ValueError, pd.errors.ParserError) as err:
        raise InputFormatError(
            f"{path}: not a readable MatrixMarket file ({type(err).__name__}: {err})"
        ) from err
    if len(entries) != nnz or entries.shape[1] != (2 if pattern else 3):
        raise InputFormatError(
            f"{path}: the header declares {nnz} entries of {2 if pattern else 3} columns, the "
            f"file holds {len(entries)} of {entries.shape[1]} (truncated or damaged?)"
        )
    rows, cols = entries[:, 0].astype(np.int64) - 1, entries[:, 1].astype(np.int64) - 1
    if nnz and (rows.min() < 0 or cols.min() < 0 or rows.max() >= n_rows or cols.max() >= n_cols):
        raise InputFormatError(f"{path}: entries lie outside the declared {n_rows} x {n_cols}")
    values = np.ones(nnz) if pattern else entries[:, 2]
    return sp.coo_matrix((values, (rows, cols)), shape=(n_rows, n_cols))


def read_10x_mtx(path: str | Path, *, genome: str | None = None) -> ad.AnnData:
    """Read a 10x matrix folder: v2 (``genes.tsv``) or v3 (``features.tsv.gz``), gzipped or not.

    ``path`` may be the folder holding ``matrix.mtx`` or a parent of it
    (e.g. ``filtered_gene_bc_matrices/`` with one genome folder below).
    """
    folder = _matrix_folder(Path(path), genome)
    mtx = _first(folder, "matrix.mtx")
    features = _first(folder, "features.tsv", "genes.tsv")
    barcodes = _first(folder, "barcodes.tsv")
    if features is None or barcodes is None:
        raise InputFormatError(
            f"{folder}: matrix.mtx found but features/genes.tsv or barcodes.tsv missing"
        )
    m = read_mtx(mtx)
    feat, bcs = _read_table(features, "features"), _read_table(barcodes, "barcodes")[0]
    if m.shape != (len(feat), len(bcs)):
        raise InputFormatError(
            f"{folder}: matrix is {m.shape[0]} x {m.shape[1]} but there are {len(feat)} features "
            f"and {len(bcs)} barcodes"
        )
    var = pd.DataFrame(
        {
            "gene_ids": feat[0].to_numpy(),
            "gene_symbols": (feat[1] if feat.shape[1] > 1 else feat[0]).to_numpy(),
            "feature_types": (
                feat[2] if feat.shape[1] > 2 else pd.Series([GEX] * len(feat))
            ).to_numpy(),
        }
    )
    var.index = var.index.astype(str)
    X = sp.csr_matrix(m.T.tocsr(), dtype=np.float32)
    return ad.AnnData(X=X, obs=pd.DataFrame(index=bcs.to_numpy()), var=var)


def _h5_layout(path: Path) -> tuple[str, list[str]]:
    with h5py.File(path, "r") as f:
        if "matrix" in f:
            return "v3", []
        genomes = [k for k, v in f.items() if isinstance(v, h5py.Group)]
    return "legacy", genomes


def read_10x_h5(path: str | Path, *, genome: str | None = None) -> ad.AnnData:
    """Read a Cell Ranger HDF5 file (1.x/2.x PyTables layout or the >= 3 ``/matrix`` layout)."""
    import scanpy as sc

    path = Path(path)
    try:
        layout, genomes = _h5_layout(path)
    except OSError as err:
        raise InputFormatError(f"{path}: not a readable HDF5 file ({err})") from err
    if layout == "legacy":
        if not genomes:
            raise InputFormatError(f"{path}: HDF5 file holds neither /matrix nor a genome group")
        if genome is None and len(genomes) > 1:
            raise InputFormatError(
                f"{path}: legacy 10x file with several genomes ({', '.join(genomes)}); set rna.genome"
            )
        genome = genome or genomes[0]
        if genome not in genomes:
            raise InputFormatError(f"{path}: genome '{genome}' not in file ({', '.join(genomes)})")
    try:
        a = sc.read_10x_h5(path, genome=genome, gex_only=False)
    except Exception as err:  # scanpy / h5py raise several types for damaged files
        raise InputFormatError(
            f"{path}: not a readable 10x HDF5 file ({type(err).__name__}: {err})"
        ) from err
    var = pd.DataFrame(
        {
            "gene_ids": a.var["gene_ids"].astype(str).to_numpy(),
            "gene_symbols": a.var_names.astype(str).to_numpy(),
            "feature_types": (
                a.var["feature_types"].astype(str).to_numpy()
                if "feature_types" in a.var
                else np.full(a.n_vars, GEX)
            ),
        },
        index=np.arange(a.n_vars).astype(str),
    )
    return ad.AnnData(
        X=sp.csr_matrix(a.X, dtype=np.float32), obs=pd.DataFrame(index=a.obs_names), var=var
    )


def read_counts_h5ad(path: str | Path) -> ad.AnnData:
    """Read raw counts from an ``.h5ad`` (``layers["counts"]`` if present, else ``X``).

    Only the counts, ``obs``, ``var`` and ``obsm["protein"]`` are read: an ``.h5ad`` shared
    after an analysis also holds a normalised ``X``, ``raw``, embeddings and graphs, which
    would take several times the counts' memory. Files from before anndata 0.7 (``obs`` a
    table dataset) are read whole.
    """
    from anndata.io import read_elem

    path = Path(path)
    try:
        with h5py.File(path, "r") as f:
            if isinstance(f.get("obs"), h5py.Dataset):  # before anndata 0.7
                a = ad.read_h5ad(path)
                counts = a.layers["counts"] if "counts" in a.layers else a.X
                obs, var, obsm, uns = a.obs, a.var, a.obsm, a.uns
            else:
                key = "layers/counts" if "layers/counts" in f else "X"
                counts = read_elem(f[key]) if key in f else None
                obs, var = read_elem(f["obs"]), read_elem(f["var"])
                obsm = {"protein": read_elem(f["obsm/protein"])} if "obsm/protein" in f else {}
                names = "uns/protein_names"
                uns = {"protein_names": read_elem(f[names])} if names in f else {}
    except Exception as err:  # anndata / h5py raise several types for damaged files
        raise InputFormatError(
            f"{path}: not a readable .h5ad file ({type(err).__name__}: {err})"
        ) from err
    if counts is None:
        raise InputFormatError(f"{path}: neither layers['counts'] nor X holds a matrix")
    var = pd.DataFrame(
        {
            "gene_ids": var.get("gene_ids", pd.Series(var.index, index=var.index))
            .astype(str)
            .to_numpy(),
            "gene_symbols": var.index.astype(str).to_numpy(),
            "feature_types": var.get("feature_types", pd.Series(GEX, index=var.index))
            .astype(str)
            .to_numpy(),
        },
        index=np.arange(len(var)).astype(str),
    )
    obs = obs.copy()
    obs.index = obs.index.astype(str)
    out = ad.AnnData(X=sp.csr_matrix(counts, dtype=np.float32), obs=obs, var=var)
    if "protein" in obsm:
        out.obsm["protein"] = np.asarray(obsm["protein"], dtype=np.float32)
        out.uns["protein_names"] = list(uns.get("protein_names", []))
    return out


def _check_counts(X: sp.csr_matrix, path: Path) -> None:
    data = X.data
    if data.size and (data.min() < 0 or not np.all(np.equal(np.mod(data, 1), 0))):
        raise InputFormatError(
            f"{path}: matrix does not hold raw counts (negative or non-integer values found); "
            "give the raw UMI counts (layers['counts'] in an .h5ad)"
        )


def read_rna(
    path: str | Path,
    *,
    sample_id: str,
    genome: str | None = None,
) -> ad.AnnData:
    """Read one scRNA-seq sample from any supported input.

    Parameters
    ----------
    path
        10x ``.h5``, 10x matrix folder, or ``.h5ad`` with raw counts.
    sample_id
        Prefix for barcodes (``<sample_id>_<barcode>``) and ``obs["sample_id"]``.
    genome
        Genome to read from multi-genome legacy files; ``None`` when there is only one.

    Examples
    --------
    >>> adata = read_rna("pbmc/filtered_feature_bc_matrix.h5", sample_id="P1")  # doctest: +SKIP
    >>> adata.layers["counts"]  # doctest: +SKIP
    """
    path = Path(path)
    try:
        if path.is_dir():
            a = read_10x_mtx(path, genome=genome)
        elif path.suffix == ".h5":
            a = read_10x_h5(path, genome=genome)
        elif path.suffix == ".h5ad":
            a = read_counts_h5ad(path)
        else:
            raise InputFormatError(
                f"{path}: unsupported input (expected .h5, .h5ad or a 10x folder)"
            )
    except InputFormatError as err:
        raise InputFormatError(f"sample '{sample_id}': {err}") from err
    if a.n_obs == 0 or a.n_vars == 0:
        raise InputFormatError(f"sample '{sample_id}': {path} holds no cells or no features")
    _check_counts(a.X, path)

    ftypes = a.var["feature_types"].astype(str).to_numpy()
    is_adt = ftypes == ADT
    is_gex = ftypes == GEX
    other = sorted(set(ftypes[~(is_adt | is_gex)]))
    if other:
        logger.warning("sample %s: dropping feature types %s", sample_id, other)
    if not is_gex.any():
        raise InputFormatError(f"sample '{sample_id}': {path} has no Gene Expression features")

    out = a[:, is_gex].copy()
    protein = a.obsm.get("protein")
    protein_names = list(a.uns.get("protein_names", []))
    if is_adt.any():
        protein = a.X[:, np.flatnonzero(is_adt)].toarray().astype(np.float32)
        protein_names = a.var.loc[is_adt, "gene_symbols"].astype(str).tolist()
    out.var_names = pd.Index(out.var["gene_symbols"].astype(str).to_numpy())
    out.var = out.var.drop(columns="gene_symbols")
    out.var_names_make_unique()
    out.obs["barcode"] = out.obs_names.astype(str)
    out.obs_names = [f"{sample_id}_{b}" for b in out.obs_names]
    if not out.obs_names.is_unique:
        raise InputFormatError(f"sample '{sample_id}': {path} has duplicated barcodes")
    out.obs["sample_id"] = sample_id
    out.layers["counts"] = sp.csr_matrix(out.X, dtype=np.float32)
    out.X = None
    if protein is not None:
        out.obsm["protein"] = np.asarray(protein, dtype=np.float32)
        out.uns["protein_names"] = protein_names
    out.uns["dropped_feature_types"] = other
    logger.info(
        "sample %s: %d cells x %d genes (%d ADT) from %s",
        sample_id,
        out.n_obs,
        out.n_vars,
        len(protein_names),
        path,
    )
    return out


def _features(adata: ad.AnnData) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ids = adata.var.get("gene_ids", adata.var_names).astype(str).to_numpy()
    ftypes = adata.var.get("feature_types", "Gene Expression")
    ftypes = np.broadcast_to(np.asarray(ftypes, dtype=str), (adata.n_vars,))
    return ids, adata.var_names.astype(str).to_numpy(), ftypes


def write_10x_mtx(adata: ad.AnnData, folder: str | Path, *, version: int = 3) -> None:
    """Cell Ranger MEX folder: v3 (gzipped, ``features.tsv.gz``) or v2 (plain, ``genes.tsv``)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    ids, names, ftypes = _features(adata)
    m = sp.csc_matrix(adata.X.T).astype(np.int64)
    gz = version >= 3
    # mtime=0: the gzip header then carries no time stamp, so the same matrix gives the same
    # bytes (and checksum) every time it is written
    op = (
        (lambda p: gzip.GzipFile(p, "wb", compresslevel=1, mtime=0))
        if gz
        else (lambda p: open(p, "wb"))
    )
    sfx = ".gz" if gz else ""
    with op(folder / f"matrix.mtx{sfx}") as fh:
        scipy.io.mmwrite(fh, sp.coo_matrix(m), field="integer")
    feat_name = "features.tsv" if gz else "genes.tsv"
    rows = zip(ids, names, ftypes, strict=True)
    lines = (f"{i}\t{n}\t{t}\n" if gz else f"{i}\t{n}\n" for i, n, t in rows)
    with op(folder / f"{feat_name}{sfx}") as fh:
        fh.write("".join(lines).encode())
    with op(folder / f"barcodes.tsv{sfx}") as fh:
        fh.write("".join(f"{b}\n" for b in adata.obs_names).encode())


def write_10x_h5(adata: ad.AnnData, path: str | Path, *, genome: str = "GRCh38") -> None:
    """Cell Ranger >= 3 HDF5 (``/matrix`` group, CSC genes × cells)."""
    ids, names, ftypes = _features(adata)
    m = sp.csc_matrix(sp.csr_matrix(adata.X, dtype=np.int32).T)
    with h5py.File(path, "w") as f:
        f.attrs["library_ids"] = np.array([b"demo"])
        f.attrs["chemistry_description"] = "Single Cell 3' v3"
        g = f.create_group("matrix")
        g.create_dataset("barcodes", data=np.array(adata.obs_names, dtype="S"))
        g.create_dataset("data", data=m.data.astype(np.int32), compression="gzip")
        g.create_dataset("indices", data=m.indices.astype(np.int64), compression="gzip")
        g.create_dataset("indptr", data=m.indptr.astype(np.int64))
        g.create_dataset("shape", data=np.array(m.shape, dtype=np.int32))
        fg = g.create_group("features")
        fg.create_dataset("id", data=ids.astype("S"))
        fg.create_dataset("name", data=names.astype("S"))
        fg.create_dataset("feature_type", data=ftypes.astype("S"))
        fg.create_dataset("genome", data=np.array([genome] * len(ids), dtype="S"))
        fg.create_dataset("_all_tag_keys", data=np.array([b"genome"]))
