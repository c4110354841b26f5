"""Barcode spillover estimated from the data: a planted coefficient recovered on simulated
barcoded samples, the cases it must refuse, and the Bodenmiller PBMC8 files (their Nd146 and
Lu175 codes lift CD4, CD20, HLA-DR and CD7 of negative cells)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from immunoprofiler.pp.spillover import estimate_barcode_spillover, spill_pairs
from tests.conftest import shared

METALS = {"BC": "Nd146", "CD4": "Nd145", "CD20": "Sm147", "CD45": "Nd144", "CD3": "Nd150"}


def _barcoded(spill=0.004, n=20_000, seed=0):
    """Half the events carry a code (Nd146, ~2,000 counts, varying per cell); CD4 (Nd145)
    is positive on 40 % of cells and receives ``spill`` of the code; CD20 (Sm147) receives
    nothing; CD45 (Nd144) is positive on every cell."""
    rng = np.random.default_rng(seed)
    code = np.where(np.arange(n) < n // 2, rng.lognormal(np.log(2000), 0.4, n), 0.0)
    pos = rng.random(n) < 0.4
    cd4 = np.where(pos, rng.lognormal(np.log(150), 0.3, n), 0.0)
    cd4 = rng.poisson(cd4 + spill * code) - rng.random(n)  # counts, CyTOF's randomisation
    cd20 = rng.poisson(np.where(rng.random(n) < 0.1, 300.0, 0.0)) - rng.random(n)
    cd45 = rng.poisson(rng.lognormal(np.log(800), 0.3, n)) - rng.random(n)
    return pd.DataFrame({"BC": code, "CD4": cd4, "CD20": cd20, "CD45": cd45})


def test_the_planted_spill_is_recovered_and_nothing_is_invented():
    S, pairs = estimate_barcode_spillover(_barcoded(0.004), METALS, ["BC"])
    assert S.loc["BC", "CD4"] == pytest.approx(0.004, rel=0.25)
    assert S.loc["BC", "CD20"] < 0.0005  # a neighbour that receives nothing
    assert S.loc["BC", "CD45"] == 0  # positive on every cell: no negatives to read it from
    assert "negative" in pairs.set_index("target").loc["CD45", "evidence"]
    assert np.allclose(np.diag(S), 1) and S.loc["CD4", "BC"] == 0  # markers never spill here


def test_compensating_the_estimate_brings_the_coded_negatives_back():
    events = _barcoded(0.004, seed=1)
    S, _ = estimate_barcode_spillover(events, METALS, ["BC"])
    true = events.to_numpy() @ np.linalg.inv(S.loc[events.columns, events.columns].to_numpy())
    cd4 = pd.Series(true[:, 1])
    negative = cd4 < 20
    on = events["BC"].to_numpy() > 0
    before = np.median(events["CD4"][negative & on]) - np.median(events["CD4"][negative & ~on])
    after = np.median(cd4[negative & on]) - np.median(cd4[negative & ~on])
    assert before > 5 and abs(after) < 1


def test_a_code_on_every_event_or_none_gives_no_estimate():
    events = _barcoded().assign(BC=2000.0)
    S, pairs = estimate_barcode_spillover(events, METALS, ["BC"])
    assert (S.loc["BC"].drop("BC") == 0).all()
    assert pairs["evidence"].str.contains("off in 0 events").all()


def test_targets_limit_the_pairs():
    _, pairs = estimate_barcode_spillover(_barcoded(), METALS, ["BC"], targets=["CD20"])
    assert pairs["target"].tolist() == ["CD20"]
    assert spill_pairs({"BC": "Cd110:114", "CD4": "Cd111"}, ["BC"]) == []  # a summed range


def test_pbmc8_codes_spill_into_the_type_markers_beside_them(tmp_path):
    from immunoprofiler.params import CytoSpillover
    from immunoprofiler.pipeline import cyto_spillover

    folder = shared("cytof_bodenmiller2012_pbmc8_patients1-4")
    files = sorted(folder.glob("*.fcs"))
    pairs = cyto_spillover(
        files,
        tmp_path / "spill.tsv",
        pairs=tmp_path / "pairs.tsv",
        panels=[None] * len(files),
        modality="cytof",
        params=CytoSpillover(seed=0, events_per_file=5000),
    ).set_index(["source", "target"])["spill"]
    # Nd146 (Reference samples' code) → CD4 Nd145 and CD20 Sm147; Lu175 (BCR-XL) → CD7
    # Yb176 (lutetium's 176 isotope) and HLA-DR Yb174: 0.1-1 %, CyTOF's range
    assert 0.002 < pairs["BC3(Nd146)Dd", "CD4(Nd145)Dd"] < 0.006
    assert 0.001 < pairs["BC3(Nd146)Dd", "CD20(Sm147)Dd"] < 0.005
    assert 0.005 < pairs["BC7(Lu175)Dd", "CD7(Yb176)Dd"] < 0.015
    assert 0.001 < pairs["BC7(Lu175)Dd", "HLA-DR(Yb174)Dd"] < 0.005
    table = pd.read_csv(tmp_path / "pairs.tsv", sep="\t")
    state = table["target"].str.startswith("p")  # PBMC8's state markers: pS6, pNFkB, ...
    assert state.any() and not table.loc[state, "applied"].any()  # estimated, never applied
    assert table.loc[~state, "applied"].all()
    # the target's marker, for the notes of the differential-state results
    assert (table.loc[table["target"] == "pNFkB(Nd142)Dd", "marker"] == "pNFkB").all()
    # the Reference code beside pNFkB (Nd142, isotope) and pp38 (Nd144): reported
    assert pairs["BC3(Nd146)Dd", "pNFkB(Nd142)Dd"] > 0.001
    matrix = pd.read_csv(tmp_path / "spill.tsv", sep="\t", index_col=0)
    assert matrix.loc["BC3(Nd146)Dd", "CD4(Nd145)Dd"] == pytest.approx(
        pairs["BC3(Nd146)Dd", "CD4(Nd145)Dd"]
    )
    assert "pNFkB(Nd142)Dd" not in matrix.columns  # not applied


def test_files_without_codes_give_an_empty_matrix_and_are_left_as_they_are(tmp_path):
    """The rule's function on CyTOF files without barcode channels (the demo's): no pair,
    an empty matrix, and preprocessing with it compensates nothing; a file that cannot be
    read is left out of the estimate (its own job reports it)."""
    from immunoprofiler.datasets.cytometry import simulate_cytometry, write_fcs
    from immunoprofiler.params import CytoSpillover
    from immunoprofiler.pipeline import cyto_preprocess, cyto_spillover
    from tests.conftest import step_params

    files = []
    for i in range(2):
        X, names, desc, _, _ = simulate_cytometry(2000, modality="cytof", batch=i, seed=i)
        write_fcs(tmp_path / f"c{i}.fcs", np.asarray(X), names, desc)
        files.append(tmp_path / f"c{i}.fcs")
    (tmp_path / "broken.fcs").write_bytes(b"FCS3.0  garbage")
    pairs = cyto_spillover(
        [*files, tmp_path / "broken.fcs"],
        tmp_path / "spill.tsv",
        pairs=tmp_path / "pairs.tsv",
        panels=[None, None, None],
        modality="cytof",
        params=CytoSpillover(seed=0),
    )
    assert pairs.empty
    out = {k: tmp_path / f"c0.{k}" for k in ("h5ad", "panel", "table")}
    cyto_preprocess(
        files[0],
        out["h5ad"],
        panel_out=out["panel"],
        table=out["table"],
        sample_id="c0",
        modality="cytof",
        metadata={},
        params=step_params("cyto_preprocess"),
        spillover=tmp_path / "spill.tsv",
        spillover_estimated=True,
    )
    import anndata as ad

    uns = ad.read_h5ad(out["h5ad"], backed="r").uns
    assert "spillover" not in uns  # no matrix applied
    entry = uns["provenance"]["cyto_compensate:c0"]
    assert entry["params"] == '{"spillover": "none"}' and "spill.tsv" in entry["inputs"]
