"""Every real CyTOF and flow FCS file in ../shared/data reads with its quirks handled."""

from __future__ import annotations

import numpy as np
import pytest

from immunoprofiler.io.fcs import FCSError, read_fcs, spillover_from_keywords
from tests.conftest import shared

# (folder, file, events, channels, spillover detectors) as measured in each SOURCE.md
REAL_FILES = [
    ("cytof_bodenmiller2012_pbmc8_patients1-4", "PBMC8_30min_patient1_BCR-XL.fcs", 2838, 35, 0),
    ("cytof_bodenmiller2012_pbmc8_patients1-4", "PBMC8_30min_patient1_Reference.fcs", 2739, 35, 0),
    ("cytof_bodenmiller2012_pbmc8_patients1-4", "PBMC8_30min_patient2_BCR-XL.fcs", 16675, 35, 0),
    ("cytof_bodenmiller2012_pbmc8_patients1-4", "PBMC8_30min_patient2_Reference.fcs", 16725, 35, 0),
    ("cytof_bodenmiller2012_pbmc8_patients1-4", "PBMC8_30min_patient3_BCR-XL.fcs", 12252, 35, 0),
    ("cytof_bodenmiller2012_pbmc8_patients1-4", "PBMC8_30min_patient3_Reference.fcs", 9434, 35, 0),
    ("cytof_bodenmiller2012_pbmc8_patients1-4", "PBMC8_30min_patient4_BCR-XL.fcs", 8990, 35, 0),
    ("cytof_bodenmiller2012_pbmc8_patients1-4", "PBMC8_30min_patient4_Reference.fcs", 6906, 35, 0),
    ("cytof_cytofkit_pbmc_stim_cd19neg", "130515_C2_stim_CD19-.fcs", 15942, 53, 0),
    *[
        (
            "cytof_cytonorm_gates_wholeblood_3batches",
            f"Gates_PTLG0{b}_Unstim_Control_{r}.fcs",
            1000,
            55,
            0,
        )
        for b in ("21", "28", "34")
        for r in (1, 2)
    ],
    ("flow_flowio_100715_human_pbmc_facsaria", "100715.fcs", 65016, 16, 13),
    ("flow_flowkit_facscalibur_tcells_data1", "data1.fcs", 13367, 8, 0),
    ("flow_flowkit_pbmc_lsrii_ics_il10", "test_comp_example.fcs", 10703, 18, 14),
    ("flow_flowsom_68983_mouse_bal_manual_gates", "68983.fcs", 19225, 18, 11),
]


@pytest.mark.parametrize(("folder", "name", "events", "channels", "n_spill"), REAL_FILES)
def test_real_file_reads(folder, name, events, channels, n_spill):
    path = shared(folder, name)
    a = read_fcs(path, sample_id="s")
    assert a.shape == (events, channels)
    raw = a.layers["raw"]
    assert raw.dtype == np.float32 and np.isfinite(raw).all()
    assert a.obs_names[0] == "s_0" and a.var_names.is_unique
    np.testing.assert_array_equal(a.obs["event"], np.arange(events))
    assert a.uns["fcs"]["keywords"]["tot"] == str(events)
    if n_spill:
        assert len(a.uns["spillover"]["detectors"]) == n_spill
        assert set(a.uns["spillover"]["detectors"]) <= set(a.var_names)
        np.testing.assert_allclose(np.diag(a.uns["spillover"]["matrix"]), 1.0)
    else:
        assert "spillover" not in a.uns


def test_off_by_one_offset_is_read_like_fcsparser():
    # FlowIO alone refuses this file; the first event must still be aligned (Time is monotone)
    a = read_fcs(shared("flow_flowkit_pbmc_lsrii_ics_il10", "test_comp_example.fcs"), sample_id="s")
    time = a.layers["raw"][:, list(a.var_names).index("Time")]
    assert (np.diff(time) >= 0).mean() > 0.99
    fsc = a.layers["raw"][:, 0]
    assert 0 < np.median(fsc) < 262144


def test_latin1_header_and_big_endian_cytof():
    a = read_fcs(
        shared("cytof_cytofkit_pbmc_stim_cd19neg", "130515_C2_stim_CD19-.fcs"), sample_id="s"
    )
    assert "\u00c9" in a.uns["fcs"]["keywords"]["fil"] or "stim" in a.uns["fcs"]["keywords"]["fil"]
    assert a.uns["fcs"]["version"] == "2.0"
    dna = a.layers["raw"][:, list(a.var_names).index("(Ir191)Di")]
    assert np.median(dna) > 10  # real DNA counts, not byte-swapped garbage


def test_integer_log_amplified_channels_are_linearised():
    # FACSCalibur: $DATATYPE=I, $PnE=4,0 on FL1-H: value = 10 ** (4 * channel / 1024)
    import flowio

    path = shared("flow_flowkit_facscalibur_tcells_data1", "data1.fcs")
    a = read_fcs(path, sample_id="s")
    fd = flowio.FlowData(str(path))
    ints = np.reshape(np.asarray(fd.events), (-1, fd.channel_count))
    fl1 = list(a.var_names).index("FL1-H")
    np.testing.assert_allclose(
        a.layers["raw"][:5, fl1], 10 ** (4 * ints[:5, fl1] / 1024), rtol=1e-5
    )


def test_truncated_and_non_fcs_files_name_the_file(tmp_path):
    src = shared("flow_flowsom_68983_mouse_bal_manual_gates", "68983.fcs").read_bytes()
    cut = tmp_path / "cut.fcs"
    cut.write_bytes(src[: len(src) // 2])
    with pytest.raises(FCSError, match=r"cut\.fcs"):
        read_fcs(cut, sample_id="s")
    bad = tmp_path / "notes.fcs"
    bad.write_text("sample_id\tpath\n")
    with pytest.raises(FCSError, match=r"notes\.fcs: not an FCS file"):
        read_fcs(bad, sample_id="s")
    with pytest.raises(FCSError, match="does not exist"):
        read_fcs(tmp_path / "missing.fcs", sample_id="s")


def test_spillover_keyword_parsing():
    spill = spillover_from_keywords({"spillover": "2,A,B,1,0.1,0.2,1"})
    assert list(spill.index) == ["A", "B"] and spill.loc["A", "B"] == 0.1
    assert spillover_from_keywords({"spill": "0"}) is None
    with pytest.raises(FCSError, match="declares 3 detectors"):
        spillover_from_keywords({"spill": "3,A,B,C,1,0,0,1"})
