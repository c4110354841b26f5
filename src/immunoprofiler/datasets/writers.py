"""Write count matrices in the 10x layouts the readers accept (to exercise them on demo data)."""

from __future__ import annotations

import gzip
from pathlib import Path

import h5py
import numpy as np
import scipy.io
import scipy.sparse as sp
from anndata import AnnData


def _features(adata: AnnData) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ids = adata.var.get("gene_ids", adata.var_names).astype(str).to_numpy()
    ftypes = adata.var.get("feature_types", "Gene Expression")
    ftypes = np.broadcast_to(np.asarray(ftypes, dtype=str), (adata.n_vars,))
    return ids, adata.var_names.astype(str).to_numpy(), ftypes


def write_10x_mtx(adata: AnnData, folder: str | Path, *, version: int = 3) -> None:
    """Cell Ranger MEX folder: v3 (gzipped, ``features.tsv.gz``) or v2 (plain, ``genes.tsv``)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    ids, names, ftypes = _features(adata)
    m = sp.csc_matrix(adata.X.T).astype(np.int64)
    gz = version >= 3
    op = (lambda p: gzip.open(p, "wb", compresslevel=1)) if gz else (lambda p: open(p, "wb"))
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


def write_10x_h5(adata: AnnData, path: str | Path, *, genome: str = "GRCh38") -> None:
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
