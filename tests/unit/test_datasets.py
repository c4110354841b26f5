"""The demo simulator: deterministic, real gene symbols, all barcode states, every writer readable."""

from __future__ import annotations

import numpy as np
import pandas as pd

from immunoprofiler.datasets import DEMO_SAMPLES, demo_paths, simulate_pbmc
from immunoprofiler.datasets.demo import MT_GENES, POPULATIONS, gene_universe
from immunoprofiler.io.tenx import read_rna


def test_simulator_is_deterministic_and_complete():
    a = simulate_pbmc(600, batch=1, seed=5)
    b = simulate_pbmc(600, batch=1, seed=5)
    assert (a.X != b.X).nnz == 0
    assert set(a.obs["true_state"]) == {"cell", "damaged", "doublet", "empty"}
    assert set(a.obs.loc[a.obs.true_state == "cell", "true_cell_type"]) <= set(POPULATIONS)
    assert all(m in a.var_names for m in MT_GENES)
    assert {"CD3E", "MS4A1", "CD14", "NKG7", "FOXP3"} <= set(a.var_names)
    tot = np.asarray(a.X.sum(1)).ravel()
    state = a.obs["true_state"].to_numpy()
    assert np.median(tot[state == "empty"]) < 0.1 * np.median(tot[state == "cell"])
    mt = a[:, list(MT_GENES)].X.sum(1).A1 / tot
    assert np.median(mt[state == "damaged"]) > 5 * np.median(mt[state == "cell"])


def test_batches_differ_and_gene_padding():
    a, b = simulate_pbmc(400, batch=0, seed=0), simulate_pbmc(400, batch=1, seed=0)
    assert list(a.var_names) == list(b.var_names)
    assert not np.allclose(a.X.mean(0), b.X.mean(0), rtol=0.2)
    genes = gene_universe(3000)
    assert len(genes) == 3000 and genes[-1].startswith("SIMG")


def test_demo_every_format_reads_back(demo_dir):
    truth = pd.read_csv(demo_dir / "truth.tsv.gz", sep="\t")
    paths = demo_paths(demo_dir)
    for sid in DEMO_SAMPLES["sample_id"]:
        a = read_rna(paths[sid], sample_id=sid)
        assert a.n_obs == (truth["sample_id"] == sid).sum()
        assert set(a.obs["barcode"]) == set(truth.loc[truth.sample_id == sid, "barcode"])
    p1 = read_rna(demo_paths(demo_dir)["P1_pre"], sample_id="P1_pre")
    assert p1.obsm["protein"].shape[1] == 6
    assert set(DEMO_SAMPLES["format"]) == {"mex_v3", "mex_v2", "h5_v3", "h5ad"}
    assert DEMO_SAMPLES["batch"].nunique() == 2 and len(DEMO_SAMPLES) >= 3


def test_demo_cytometry_files_and_truth(demo_dir):
    from immunoprofiler.datasets import DEMO_CYTO_SAMPLES
    from immunoprofiler.io.fcs import read_fcs

    truth = pd.read_csv(demo_dir / "cyto_truth.tsv.gz", sep="\t")
    paths = demo_paths(demo_dir)
    for r in DEMO_CYTO_SAMPLES.itertuples():
        a = read_fcs(paths[f"{r.modality}_{r.sample_id}"], sample_id=r.sample_id)
        t = truth[(truth["modality"] == r.modality) & (truth["sample_id"] == r.sample_id)]
        assert a.n_obs == len(t)
        assert ("spillover" in a.uns) == (r.modality == "flow")
        assert a.uns["fcs"]["version"] == "3.1"
        assert a.uns["fcs"]["keywords"]["byteord"] == "1,2,3,4"  # little-endian (real files: big)
    assert set(truth["kind"]) == {"cell", "bead", "dead", "doublet", "debris"}
    assert (
        pd.read_csv(paths["cytof_panel"], sep="\t")["marker_class"]
        .isin(["type", "state", "none"])
        .all()
    )


def test_demo_files_are_byte_identical_on_rewrite(tmp_path):
    """Every demo file (gzipped MEX, truth tables, h5, h5ad, FCS) is the same bytes when written
    again, so the input checksums in the provenance are reproducible."""
    import hashlib

    from immunoprofiler.datasets import write_demo

    def digests(folder):
        return {
            str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*"))
            if p.is_file()
        }

    write_demo(tmp_path / "a", n_cells=250, n_events=1000, seed=0)
    write_demo(tmp_path / "b", n_cells=250, n_events=1000, seed=0)
    a, b = digests(tmp_path / "a"), digests(tmp_path / "b")
    assert len(a) > 15 and any(k.endswith(".gz") for k in a)
    assert a == b
