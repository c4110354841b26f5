"""Cohort files written from lazily read samples: same content as an in-memory concat,
column reads, atomic writes, derived files."""

from __future__ import annotations

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from immunoprofiler.io.h5ad import iter_columns, lazy_matrix, read_columns, read_obs, write_h5ad


def blocks(n_blocks=3, n=40, g=25, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n_blocks):
        X = sp.random(n, g, density=0.2, random_state=rng, format="csr", dtype=np.float32)
        a = ad.AnnData(
            X=X, obs=pd.DataFrame({"sample_id": f"s{i}"}, index=[f"s{i}_{j}" for j in range(n)])
        )
        a.var_names = [f"G{k}" for k in range(g)]
        a.layers["counts"] = (X * 10).astype(np.float32)
        a.obsm["protein"] = rng.normal(size=(n, 3)).astype(np.float32)
        out.append(a)
    return out


def write_cohort(path, parts, **uns):
    """The parts written as one cohort file, the way ``rna_normalize`` writes one: each
    part saved as a sample file, read back lazily (dask) and written by anndata; the
    sample files removed after."""
    import dask.array as da

    files = []
    for i, part in enumerate(parts):
        files.append(path.with_name(f"{path.stem}.part{i}.h5ad"))
        part.write_h5ad(files[-1])
    genes = parts[0].var_names
    cohort = ad.AnnData(
        X=da.concatenate([lazy_matrix(f, columns=genes, chunk_size=7) for f in files]),
        obs=pd.concat([p.obs for p in parts]),
        var=parts[0].var,
        obsm={"protein": np.concatenate([p.obsm["protein"] for p in parts])},
        uns=uns,
    )
    cohort.layers["counts"] = da.concatenate(
        [lazy_matrix(f, "counts", columns=genes, chunk_size=7) for f in files]
    )
    write_h5ad(cohort, path, nbytes=10**6)
    for f in files:  # read while the cohort was written; not needed after
        f.unlink()
    return path


def test_lazy_cohort_written_equals_concat(tmp_path):
    """Samples read lazily (in blocks of 7 cells, one sample's genes in another order)
    and written by anndata equal the in-memory concatenation."""
    parts = blocks()
    ref = ad.concat(parts)
    parts[1] = parts[1][:, ::-1].copy()  # genes in another order: read in the cohort's
    write_cohort(tmp_path / "c.h5ad", [parts[0], *parts[1:]], note="x")
    got = ad.read_h5ad(tmp_path / "c.h5ad")
    assert list(got.obs_names) == list(ref.obs_names)
    assert abs(got.X - ref.X).max() == 0
    assert abs(got.layers["counts"] - ref.layers["counts"]).max() == 0
    np.testing.assert_array_equal(got.obsm["protein"], ref.obsm["protein"])
    assert got.uns["note"] == "x"
    assert got.obs["sample_id"].dtype.name == "category"


def test_read_columns_in_chunks(tmp_path):
    parts = blocks()
    write_cohort(tmp_path / "c.h5ad", parts)
    ref = ad.concat(parts)
    cols = ["G3", "G0", "G20"]
    got = read_columns(tmp_path / "c.h5ad", cols, chunk_size=7)
    assert abs(got - ref[:, cols].X).max() == 0
    got_counts = read_columns(tmp_path / "c.h5ad", cols, layer="counts", chunk_size=50)
    assert abs(got_counts - ref[:, cols].layers["counts"]).max() == 0
    # written lazily, the file's column indices are int64; the blocks read carry int32
    with h5py.File(tmp_path / "c.h5ad") as f:
        assert f["X"]["indices"].dtype == np.int64
    (whole,) = iter_columns(tmp_path / "c.h5ad", list(ref.var_names))
    assert whole.indices.dtype == np.int32 and abs(whole - ref.X).max() == 0


def test_derived_file_keeps_sparse_matrices(tmp_path):
    from immunoprofiler.io.h5ad import derive_h5ad

    parts = blocks()
    write_cohort(tmp_path / "c.h5ad", parts)
    n = 120
    derive_h5ad(
        tmp_path / "a.h5ad",
        obs_from=tmp_path / "c.h5ad",
        matrices_from=tmp_path / "c.h5ad",
        add_obs={"cell_type": pd.Categorical(["B cell"] * n)},
        obsm={"X_umap": np.zeros((n, 2))},
        uns={"a": 1},
    )
    got = ad.read_h5ad(tmp_path / "a.h5ad")
    assert (got.obs["cell_type"] == "B cell").all() and got.uns["a"] == 1
    assert got.obsm["X_umap"].shape == (n, 2) and got.obsm["protein"].shape == (n, 3)
    assert abs(got.X - ad.concat(parts).X).max() == 0
    assert abs(got.layers["counts"] - ad.concat(parts).layers["counts"]).max() == 0


def test_derived_matrices_are_links_that_follow_a_moved_folder_and_materialize(tmp_path):
    """The annotated file links the normalised file's matrices instead of copying them: a
    fraction of its size, read whole, backed and by columns as if they were in it; the folder
    moved whole still reads; :func:`materialize` writes a copy that stands alone; a missing
    target is named."""

    from immunoprofiler.io.h5ad import derive_h5ad, materialize

    parts = blocks(n_blocks=4, n=500, g=300)
    full = ad.concat(parts)
    home = tmp_path / "results"
    (home / "normalize").mkdir(parents=True)
    norm = home / "normalize" / "normalized.h5ad"
    write_cohort(norm, parts)
    labels = {"cell_type": pd.Categorical(np.arange(full.n_obs) % 2)}
    derive_h5ad(home / "annotated.h5ad", obs_from=norm, matrices_from=norm, add_obs=labels)
    # a file derived from the derived one links to the same matrices, not to a link
    derive_h5ad(home / "again.h5ad", obs_from=norm, matrices_from=home / "annotated.h5ad")
    with h5py.File(home / "again.h5ad") as f:
        assert f.get("X", getlink=True).filename == "normalize/normalized.h5ad"
    assert (home / "annotated.h5ad").stat().st_size < norm.stat().st_size / 5
    home.rename(tmp_path / "moved")
    moved = tmp_path / "moved" / "annotated.h5ad"
    got = ad.read_h5ad(moved)
    assert (
        abs(got.X - full.X).max() == 0
        and got.obs["cell_type"].tolist() == labels["cell_type"].tolist()
    )
    assert abs(got.layers["counts"] - full.layers["counts"]).max() == 0
    assert got.var_names.tolist() == full.var_names.tolist()
    backed = ad.read_h5ad(moved, backed="r")
    assert abs(backed.X[10:20] - full.X[10:20]).max() == 0
    backed.file.close()
    cols = [full.var_names[7], full.var_names[2]]
    assert abs(read_columns(moved, cols) - full[:, cols].X).max() == 0
    materialize(moved, tmp_path / "alone.h5ad")
    (tmp_path / "moved" / "normalize" / "normalized.h5ad").unlink()
    alone = ad.read_h5ad(tmp_path / "alone.h5ad")
    assert abs(alone.X - full.X).max() == 0 and "cell_type" in alone.obs
    with pytest.raises(FileNotFoundError, match=r"annotated.h5ad: its X is a link to normalize/"):
        read_columns(moved, cols)
    with pytest.raises(FileNotFoundError, match="keep the results folder together"):
        materialize(moved, tmp_path / "b.h5ad")
    assert not (tmp_path / "b.h5ad").exists()


def test_a_sample_without_a_cohort_gene_is_named(tmp_path):
    parts = blocks()
    parts[0].write_h5ad(tmp_path / "s0.h5ad")
    genes = pd.Index([*parts[0].var_names, "NOTHERE"])
    with pytest.raises(KeyError, match=r"s0.h5ad: var has no \['NOTHERE'\]"):
        lazy_matrix(tmp_path / "s0.h5ad", columns=genes)


def test_read_columns_of_some_rows_sparse_and_dense(tmp_path):
    rng = np.random.default_rng(1)
    X = sp.random(120, 9, density=0.3, format="csr", dtype=np.float32, random_state=1)
    dense = rng.normal(size=(120, 9)).astype(np.float32)
    a = ad.AnnData(X=X, layers={"d": dense}, var=pd.DataFrame(index=[f"g{i}" for i in range(9)]))
    a.write_h5ad(tmp_path / "a.h5ad")
    rows = np.array([0, 3, 4, 50, 99, 119])
    cols = ["g5", "g0", "g7"]
    got = read_columns(tmp_path / "a.h5ad", cols, rows=rows, chunk_size=4)
    np.testing.assert_array_equal(got.toarray(), X[rows][:, [5, 0, 7]].toarray())
    got_d = read_columns(tmp_path / "a.h5ad", cols, layer="d", rows=rows, chunk_size=4)
    np.testing.assert_array_equal(got_d, dense[rows][:, [5, 0, 7]])
    assert read_columns(tmp_path / "a.h5ad", cols, rows=np.array([], dtype=int)).shape == (0, 3)
    with pytest.raises(ValueError, match="increasing"):
        read_columns(tmp_path / "a.h5ad", cols, rows=np.array([3, 1]))


def test_writes_are_atomic(tmp_path):
    """Nothing at the output path until the file is complete; nothing left when a write fails."""
    out = tmp_path / "a.h5ad"
    good = ad.AnnData(X=np.ones((3, 2), dtype=np.float32))
    write_h5ad(good, out)
    assert ad.read_h5ad(out).shape == (3, 2) and not (tmp_path / "a.h5ad.partial").exists()
    bad = ad.AnnData(X=np.ones((3, 2), dtype=np.float32), uns={"x": object()})
    with pytest.raises(Exception):  # noqa: B017 - anndata raises its own write error type
        write_h5ad(bad, tmp_path / "b.h5ad")
    assert not list(tmp_path.glob("b.h5ad*"))
    # a cohort written from lazily read samples: a block failing while it is computed
    # (an unreadable sample) leaves nothing
    import dask.array as da

    good.write_h5ad(tmp_path / "s.h5ad")

    def fail(block):
        raise OSError("unreadable block")

    lazy = lazy_matrix(tmp_path / "s.h5ad", chunk_size=2)
    broken = ad.AnnData(X=da.concatenate([lazy, lazy.map_blocks(fail, dtype=lazy.dtype)]))
    with pytest.raises(OSError, match="unreadable block"):
        write_h5ad(broken, tmp_path / "c.h5ad")
    assert not list(tmp_path.glob("c.h5ad*"))


@pytest.fixture
def full_disk(tmp_path):
    """A 1 MiB tmpfs (needs root, as CI runs; skipped otherwise)."""
    import os
    import subprocess

    mnt = tmp_path / "small"
    mnt.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], check=False)
    if done.returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    yield mnt
    subprocess.run(["umount", str(mnt)], check=True)


def test_a_full_disk_fails_the_write_clearly_and_leaves_nothing(full_disk, tmp_path):
    """Every writer (whole AnnData, lazy cohort, dense, annotated) raises DiskFullError naming
    the file and leaves neither it nor a partial file; a per-sample step fails its job rather
    than excluding the sample."""
    from immunoprofiler.failures import per_sample
    from immunoprofiler.io.h5ad import (
        DiskFullError,
        derive_h5ad,
        write_dense_h5ad,
        write_h5ad,
    )

    rng = np.random.default_rng(0)
    big = ad.AnnData(rng.normal(size=(4000, 100)).astype(np.float32))  # 1.6 MB
    (tmp_path / "src.h5ad").unlink(missing_ok=True)
    big.write_h5ad(tmp_path / "src.h5ad")
    writers = {
        "whole.h5ad": lambda out: write_h5ad(big, out),
        "lazy.h5ad": lambda out: write_h5ad(  # its size estimated before any block
            ad.AnnData(X=lazy_matrix(tmp_path / "src.h5ad", chunk_size=100)),
            out,
            nbytes=big.X.nbytes,
        ),
        "dense.h5ad": lambda out: write_dense_h5ad(
            out, [(big.X, big.obs)], n_obs=big.n_obs, var=big.var, categories={}
        ),
        "annotated.h5ad": lambda out: derive_h5ad(  # the matrices linked, the obsm written
            out,
            obs_from=tmp_path / "src.h5ad",
            matrices_from=tmp_path / "src.h5ad",
            obsm={"X_pca": big.X},
            uns={},
        ),
    }
    for name, write in writers.items():
        out = full_disk / name
        with pytest.raises(DiskFullError, match=rf"{name}: no space left on the device"):
            write(out)
        assert list(full_disk.iterdir()) == [], name

    @per_sample("step", inputs=(), outputs=("out",))
    def step(out, *, sample_id, modality):
        write_h5ad(big, out)

    with pytest.raises(DiskFullError):
        step(full_disk / "s.h5ad", sample_id="s", modality="flow", on_failure="exclude")
    assert list(full_disk.iterdir()) == []  # no failure record: the sample is not to blame


def _dense_cohort(path, sizes=(30, 5, 50), markers=4, seed=0):
    """A dense cohort file written file block by file block, and the blocks themselves."""
    from immunoprofiler.io.h5ad import write_dense_h5ad

    rng = np.random.default_rng(seed)
    parts = []
    for i, n in enumerate(sizes):
        X = rng.normal(size=(n, markers)).astype(np.float32)
        obs = pd.DataFrame(
            {"sample_id": f"S{i + 1}", "batch": f"b{i % 2}", "event": np.arange(n) * 2 + 1},
            index=[f"S{i + 1}_{j}" for j in range(n)],
        )
        parts.append((X, obs, X + 1))
    var = pd.DataFrame({"marker_class": "type"}, index=[f"m{k}" for k in range(markers)])
    cats = {"sample_id": [f"S{i + 1}" for i in range(len(sizes))], "batch": ["b0", "b1", "b9"]}
    write_dense_h5ad(
        path,
        iter(parts),
        n_obs=sum(sizes),
        var=var,
        categories=cats,
        integers={"event": np.int64},
        layers=("transformed",),
    )
    return parts


def test_dense_cohort_written_by_blocks_reads_as_the_concatenation(tmp_path):
    from immunoprofiler.io.h5ad import obs_blocks

    path = tmp_path / "d.h5ad"
    parts = _dense_cohort(path)
    got = ad.read_h5ad(path)
    np.testing.assert_array_equal(got.X, np.concatenate([p[0] for p in parts]))
    np.testing.assert_array_equal(got.layers["transformed"], got.X + 1)
    ref = pd.concat([p[1] for p in parts])
    # names: the row numbers, stored compactly; each row found again by sample and event
    assert list(got.obs_names) == [str(i) for i in range(85)]
    with h5py.File(path) as f:
        assert f["obs"]["_index"].dtype.kind == "S"
    assert got.obs["event"].dtype == np.int64
    np.testing.assert_array_equal(got.obs["event"], ref["event"])
    backed = ad.read_h5ad(path, backed="r")
    assert list(backed.obs_names[:3]) == ["0", "1", "2"]
    backed.file.close()
    assert got.obs["batch"].dtype.name == "category"
    assert list(got.obs["batch"].cat.categories) == ["b0", "b1", "b9"]  # the given categories
    assert got.obs["sample_id"].astype(str).tolist() == ref["sample_id"].tolist()
    assert obs_blocks(path) == [("S1", slice(0, 30)), ("S2", slice(30, 35)), ("S3", slice(35, 85))]
    with pytest.raises(ValueError, match="expected 90 rows"):
        from immunoprofiler.io.h5ad import write_dense_h5ad

        write_dense_h5ad(
            tmp_path / "e.h5ad",
            iter(parts),
            n_obs=90,
            var=got.var,
            categories={"sample_id": ["S1", "S2", "S3"], "batch": ["b0", "b1"]},
            layers=("transformed",),
        )
    assert not (tmp_path / "e.h5ad").exists()


def test_read_obs_rows_without_names_and_columns_of_a_block(tmp_path):
    path = tmp_path / "d.h5ad"
    parts = _dense_cohort(path)
    full = ad.read_h5ad(path)
    part = read_obs(path, ["batch", "sample_id"], rows=slice(30, 35), index=False)
    assert isinstance(part.index, pd.RangeIndex) and len(part) == 5
    assert part["sample_id"].dtype.name == "category"
    assert list(part["batch"].cat.categories) == ["b0", "b1", "b9"]  # the whole column's
    pd.testing.assert_frame_equal(
        read_obs(path, ["batch"], rows=np.array([0, 31, 84])),
        full.obs[["batch"]].iloc[[0, 31, 84]],
    )
    X = read_columns(path, ["m2", "m0"], rows=slice(30, 35), chunk_size=2)
    np.testing.assert_array_equal(X, parts[1][0][:, [2, 0]])


def test_obs_written_block_by_block_equals_the_columns_whole(tmp_path):
    """ObsBlocks: codes and values a file at a time; categories no row has dropped (the
    codes rewritten), the same obs as whole columns give."""
    from immunoprofiler.io.h5ad import ObsBlocks, derive_h5ad
    from immunoprofiler.tl.flowsom import value_categories

    path = tmp_path / "d.h5ad"
    _dense_cohort(path)
    n = 85
    values = np.random.default_rng(0).integers(0, 12, n)
    values[values == 3] = 4  # a value no row has is no category
    names, code = value_categories(12)
    score = np.linspace(0, 1, n, dtype=np.float32)
    files = [slice(0, 30), slice(30, 31), slice(31, n)]
    blocks = ((r, {"node": code[values[r]], "score": score[r]}) for r in files)
    spec = {"node": names, "score": np.dtype(np.float32)}
    derive_h5ad(tmp_path / "s.h5ad", obs_from=path, obs_blocks=ObsBlocks(spec, blocks))
    whole = {"node": pd.Categorical(values.astype(str)), "score": score}
    derive_h5ad(tmp_path / "w.h5ad", obs_from=path, add_obs=whole)
    s, w = ad.read_h5ad(tmp_path / "s.h5ad"), ad.read_h5ad(tmp_path / "w.h5ad")
    pd.testing.assert_frame_equal(s.obs, w.obs)
    assert "3" not in s.obs["node"].cat.categories
    short = ObsBlocks(
        spec, iter([(slice(0, 30), {"node": code[values[:30]], "score": score[:30]})])
    )
    with pytest.raises(ValueError, match="gave 30 rows, not 85"):
        derive_h5ad(tmp_path / "b.h5ad", obs_from=path, obs_blocks=short)
    assert not (tmp_path / "b.h5ad").exists()


def test_derive_copies_obs_in_hdf5_adds_columns_and_sparse_obsm(tmp_path):
    from immunoprofiler.io.h5ad import derive_h5ad

    path = tmp_path / "d.h5ad"
    _dense_cohort(path)
    n = 85
    rows = np.array([1, 40, 80])
    derive_h5ad(
        tmp_path / "c.h5ad",
        obs_from=path,
        add_obs={"cluster": pd.Categorical(np.arange(n) % 3), "kept": np.arange(n) > 2},
        obsm={"X_umap": (rows, np.ones((3, 2)))},
        uns={"note": "x"},
    )
    c = ad.read_h5ad(tmp_path / "c.h5ad")
    assert c.X is None and c.n_vars == 0 and c.n_obs == n
    assert list(c.obs.columns) == ["sample_id", "batch", "event", "cluster", "kept"]
    assert c.obs["kept"].sum() == n - 3
    emb = c.obsm["X_umap"]
    assert np.isfinite(emb).all(axis=1).nonzero()[0].tolist() == rows.tolist()
    # the annotated file: the matrices of one file, obs/obsm of the other, a column replaced
    derive_h5ad(
        tmp_path / "a.h5ad",
        obs_from=tmp_path / "c.h5ad",
        matrices_from=path,
        add_obs={"cluster": pd.Categorical(np.full(n, "x"))},
        uns={"note": "y"},
    )
    a = ad.read_h5ad(tmp_path / "a.h5ad")
    np.testing.assert_array_equal(a.X, ad.read_h5ad(path).X)
    assert list(a.obs.columns) == ["sample_id", "batch", "event", "kept", "cluster"]
    assert (a.obs["cluster"] == "x").all() and a.uns["note"] == "y"
    np.testing.assert_array_equal(a.obsm["X_umap"], emb)
    with pytest.raises(ValueError, match="are not"):  # other cells: refused, nothing written
        _dense_cohort(tmp_path / "other.h5ad", sizes=(30, 5, 49))
        derive_h5ad(tmp_path / "b.h5ad", obs_from=tmp_path / "other.h5ad", matrices_from=path)
    assert not (tmp_path / "b.h5ad").exists()
    with pytest.raises(ValueError, match="has 3 rows"):
        derive_h5ad(tmp_path / "b.h5ad", obs_from=path, add_obs={"x": np.zeros(3)})


def test_layer_as_X_backed_reads_from_disk_without_a_copy(tmp_path, monkeypatch):
    """scVI's input: a layer as the X of a backed AnnData, rows read as they are asked for
    (sorted minibatches, as scvi-tools reads backed data), or read into memory; the linking
    file, in the temporary folder (never beside the results), is a fraction of the matrix's
    size and gone after the block; a missing layer is named; the layer's size in memory is
    known before reading it."""
    import tempfile

    from immunoprofiler.io.h5ad import layer_as_X, matrix_nbytes

    parts = blocks(n_blocks=4, n=500, g=300)
    full = ad.concat(parts)
    home, tmp = tmp_path / "results", tmp_path / "tmp"
    home.mkdir(), tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    path = home / "hvg.h5ad"
    write_cohort(path, parts)
    counts = full.layers["counts"]
    # anndata writes a lazily read matrix's indices and indptr as int64
    parts_bytes = counts.data.nbytes + 8 * (counts.indices.size + counts.indptr.size)
    assert matrix_nbytes(path, "counts") == parts_bytes
    with layer_as_X(path, "counts", obs=["sample_id"]) as a:
        assert a.isbacked and not sp.issparse(a.X)  # on disk, not a matrix in memory
        rows = np.array([3, 17, 999, 1500, 1999])
        assert abs(a.X[rows] - counts[rows]).max() == 0
        assert a.obs["sample_id"].tolist() == full.obs["sample_id"].tolist()
        assert a.var_names.tolist() == full.var_names.tolist()
        (view,) = tmp.glob("immunoprofiler_backed_*/view.h5ad")
        with h5py.File(view) as f:
            assert isinstance(f.get("X", getlink=True), h5py.ExternalLink)
        assert view.stat().st_size < path.stat().st_size / 10
    assert not list(tmp.iterdir()) and [p.name for p in home.iterdir()] == ["hvg.h5ad"]
    with layer_as_X(path, "counts", obs=["sample_id"], backed=False) as a:
        assert not a.isbacked and sp.issparse(a.X) and abs(a.X - counts).max() == 0
        assert a.obs["sample_id"].tolist() == full.obs["sample_id"].tolist()
    with pytest.raises(KeyError), layer_as_X(path, "spliced"):
        pass
    assert not list(tmp.iterdir()) and [p.name for p in home.iterdir()] == ["hvg.h5ad"]
