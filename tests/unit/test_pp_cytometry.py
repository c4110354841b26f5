"""Compensation (checked against FlowKit) and transforms (known values, round trip)."""

from __future__ import annotations

import flowkit as fk
import numpy as np
import pandas as pd
import pytest

from immunoprofiler.io.fcs import read_fcs
from immunoprofiler.io.panel import derive_panel
from immunoprofiler.pp.cytometry import (
    compensate,
    inverse_transform_values,
    read_spillover,
    transform,
    transform_values,
)
from tests.conftest import shared

FLOW_WITH_SPILL = [
    ("flow_flowsom_68983_mouse_bal_manual_gates", "68983.fcs"),
    ("flow_flowio_100715_human_pbmc_facsaria", "100715.fcs"),  # $SPILL covers 13 of 16 channels
    ("flow_flowkit_pbmc_lsrii_ics_il10", "test_comp_example.fcs"),
]


@pytest.mark.parametrize(("folder", "name"), FLOW_WITH_SPILL)
def test_compensation_equals_flowkit(folder, name):
    path = shared(folder, name)
    a = read_fcs(path, sample_id="s")
    assert compensate(a) == "file"
    sample = fk.Sample(str(path), ignore_offset_error=True)
    sample.apply_compensation(sample.metadata["spill"])
    ref = sample.get_events(source="comp")
    np.testing.assert_allclose(a.layers["compensated"], ref, rtol=1e-5, atol=1e-2)
    untouched = ~a.var_names.isin(a.uns["spillover"]["detectors"])
    np.testing.assert_array_equal(
        a.layers["compensated"][:, untouched], a.layers["raw"][:, untouched]
    )


def test_user_matrix_overrides_and_cytof_is_identity(tmp_path):
    a = read_fcs(shared("flow_flowsom_68983_mouse_bal_manual_gates", "68983.fcs"), sample_id="s")
    det = ["FITC-A", "PE-A"]
    m = pd.DataFrame([[1.0, 0.2], [0.05, 1.0]], index=det, columns=det)
    m.to_csv(tmp_path / "spill.csv")  # FlowJo style: names as header and first column
    user = read_spillover(tmp_path / "spill.csv")
    assert compensate(a, user) == "user"
    raw = a.layers["raw"][:, a.var_names.get_indexer(det)].astype(np.float64)
    np.testing.assert_allclose(
        a.layers["compensated"][:, a.var_names.get_indexer(det)],
        raw @ np.linalg.inv(m.to_numpy()),
        rtol=1e-4,
        atol=1e-2,
    )
    c = read_fcs(
        shared("cytof_cytonorm_gates_wholeblood_3batches", "Gates_PTLG021_Unstim_Control_1.fcs"),
        sample_id="c",
    )
    assert compensate(c) == "none"
    np.testing.assert_array_equal(c.layers["compensated"], c.layers["raw"])
    with pytest.raises(ValueError, match="not in the file"):
        compensate(c, user)


def test_arcsinh_known_values_and_round_trip():
    x = np.array([[-150.0, 0.0, 5.0, 150.0, 1e5]]).T
    y = transform_values(x, cofactors=np.array([150.0]))
    np.testing.assert_allclose(y.ravel(), np.arcsinh([-1, 0, 5 / 150, 1, 1e5 / 150]), rtol=1e-6)
    np.testing.assert_allclose(
        transform_values(np.array([[5.0]]), cofactors=np.array([5.0])), [[0.8813736]], rtol=1e-6
    )
    rng = np.random.default_rng(0)
    X = rng.normal(0, 2000, (1000, 3))
    cof = np.array([5.0, 150.0, 37.0])
    Y = transform_values(X, cofactors=cof)
    np.testing.assert_allclose(inverse_transform_values(Y, cofactors=cof), X, rtol=1e-5, atol=1e-3)


def test_logicle_known_values_and_round_trip():
    # T=262144, W=0.5, M=4.5, A=0: the top of scale maps to 1, zero to W/(M+A)
    y = transform_values(np.array([[0.0], [262144.0]]), method="logicle")
    np.testing.assert_allclose(y.ravel(), [0.5 / 4.5, 1.0], atol=1e-6)
    X = np.array([[-500.0, -10.0, 0.0, 1.0, 150.0, 5000.0, 200000.0]]).T
    back = inverse_transform_values(transform_values(X, method="logicle"), method="logicle")
    np.testing.assert_allclose(back, X, rtol=1e-4, atol=1e-2)


def test_transform_layer_uses_panel_cofactors_and_leaves_scatter_linear():
    a = read_fcs(shared("flow_flowsom_68983_mouse_bal_manual_gates", "68983.fcs"), sample_id="s")
    p = derive_panel(a.var["channel"], a.var["description"], modality="flow").set_index("channel")
    for col in ("marker", "marker_class", "cofactor", "role"):
        a.var[col] = p.loc[a.var_names, col].to_numpy()
    compensate(a)
    transform(a)
    cd3 = list(a.var_names).index("PE-Cy7-A")
    fsc = list(a.var_names).index("FSC-A")
    np.testing.assert_allclose(
        a.layers["transformed"][:, cd3],
        np.arcsinh(a.layers["compensated"][:, cd3] / 150),
        rtol=1e-5,
    )
    np.testing.assert_array_equal(a.layers["transformed"][:, fsc], a.layers["compensated"][:, fsc])
    assert a.var.loc["PE-Cy7-A", "transformed"] and not a.var.loc["FSC-A", "transformed"]
