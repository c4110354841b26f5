"""Panels: the four CyTOF naming styles, non-marker channels, user panel files."""

from __future__ import annotations

import pandas as pd
import pytest

from immunoprofiler.io.fcs import read_fcs
from immunoprofiler.io.panel import (
    PanelError,
    canonical_marker,
    derive_panel,
    parse_channel,
    read_panel,
)
from tests.conftest import shared


@pytest.mark.parametrize(
    ("pnn", "pns", "metal", "marker"),
    [
        ("Nd142Di", "CD19", "Nd142", "CD19"),
        ("(Sm154)Di", "CD3", "Sm154", "CD3"),
        ("CD3(110:114)Dd", "CD3", "Cd110:114", "CD3"),
        ("CD45(In115)Dd", "", "In115", "CD45"),
        ("170Yb_CD3", "170Yb_CD3", "Yb170", "CD3"),
        ("Y89Di", "Y89Di", "Y89", ""),
        ("FL1-H", "CD4 FITC", None, "CD4"),
        ("FL2-H", "CD8 B PE", None, "CD8"),
        ("PE-TR-A", "PE-TR-A", None, ""),
        ("PE-A", "NK1/1", None, "NK1/1"),
    ],
)
def test_parse_channel(pnn, pns, metal, marker):
    assert parse_channel(pnn, pns) == (metal, marker)


def test_canonical_marker_aliases():
    assert canonical_marker("HLA-DR") == canonical_marker("HLADR")
    assert canonical_marker("NK1/1") == canonical_marker("NK1.1") == canonical_marker("NK1_1")
    assert canonical_marker("TCRγδ") == canonical_marker("TCRgd")


def _panel(folder, name, modality):
    a = read_fcs(shared(folder, name), sample_id="s")
    return derive_panel(a.var["channel"], a.var["description"], modality=modality).set_index(
        "channel"
    )


def test_bodenmiller_marker_first_names():
    p = _panel(
        "cytof_bodenmiller2012_pbmc8_patients1-4", "PBMC8_30min_patient1_Reference.fcs", "cytof"
    )
    assert p.loc["CD3(110:114)Dd", "marker"] == "CD3"
    assert p.loc["CD3(110:114)Dd", "marker_class"] == "type"
    assert p.loc["pS6(Yb172)Dd", "marker_class"] == "state"
    assert p.loc["BC1(La139)Dd", "role"] == "barcode"
    assert p.loc["DNA-1(Ir191)Dd", "role"] == "dna"
    assert p.loc["Cell_length", "role"] == "event_length"
    assert p.loc["Time", "marker_class"] == "none"
    assert (p["cofactor"] == 5).all()
    assert set(p.loc[p.marker_class == "type", "marker"]) == {
        "CD3",
        "CD45",
        "CD4",
        "CD20",
        "CD33",
        "CD123",
        "CD14",
        "IgM",
        "HLA-DR",
        "CD7",
    }


def test_cytofkit_old_style_and_duplicate_marker():
    p = _panel("cytof_cytofkit_pbmc_stim_cd19neg", "130515_C2_stim_CD19-.fcs", "cytof")
    assert p.loc["(Sm154)Di", "marker"] == "CD3"
    assert p.loc["(Pt195)Di", "role"] == "viability"
    assert p.loc["(Ir193)Di", "role"] == "dna"
    assert p.loc["(Pd104)Di", "role"] == "barcode"
    assert p["marker"].is_unique  # CD14 on Cd112 and Cd114
    assert p.loc["(Cd112)Di", "marker"] == "CD14"
    assert p.loc["(Cd114)Di", "marker"].startswith("CD14_")


def test_cytonorm_channels_without_description_and_beads():
    p = _panel(
        "cytof_cytonorm_gates_wholeblood_3batches", "Gates_PTLG021_Unstim_Control_1.fcs", "cytof"
    )
    for ch in ("Y89Di", "I127Di", "Ba138Di", "Dy161Di", "Pt195Di", "beadDist", "Event_length"):
        assert p.loc[ch, "marker_class"] == "none", ch
    assert p.loc["Ce140Di", "role"] == "bead"
    assert p.loc["Pt195Di", "role"] == "viability"
    assert p.loc["Nd142Di", "marker"] == "CD19" and p.loc["Nd142Di", "marker_class"] == "type"
    assert p.loc["Gd155Di", "marker_class"] == "state"  # S6


def test_flow_scatter_viability_and_unused_detectors():
    p = _panel("flow_flowsom_68983_mouse_bal_manual_gates", "68983.fcs", "flow")
    assert p.loc["FSC-A", "role"] == "scatter" and p.loc["SSC-W", "role"] == "scatter"
    assert p.loc["AmCyan-A", "role"] == "viability"  # l/d
    assert p.loc["Qdot 605-A", "marker_class"] == "none"
    assert p.loc["PE-A", "marker"] == "NK1/1" and p.loc["PE-A", "marker_class"] == "type"
    assert (p["cofactor"] == 150).all()
    q = _panel("flow_flowkit_pbmc_lsrii_ics_il10", "test_comp_example.fcs", "flow")
    assert q.loc["PE-TR-A", "marker_class"] == "none"  # $PnS == $PnN: unused detector


def test_read_panel_completes_and_checks(tmp_path):
    channels = ["Time", "Nd142Di", "Nd143Di", "Ir191Di"]
    desc = ["", "CD19", "pSTAT3", "DNA1"]
    f = tmp_path / "panel.tsv"
    pd.DataFrame(
        {
            "channel": ["Nd142Di", "Nd143Di"],
            "marker": ["CD19", "pSTAT3"],
            "marker_class": ["type", "state"],
            "cofactor": ["", "10"],
        }
    ).to_csv(f, sep="\t", index=False)
    p = read_panel(f, channels, desc, modality="cytof").set_index("channel")
    assert p.loc["Nd143Di", "cofactor"] == 10 and p.loc["Nd142Di", "cofactor"] == 5
    assert p.loc["Ir191Di", "marker_class"] == "none" and p.loc["Ir191Di", "role"] == "dna"
    bad = tmp_path / "bad.tsv"
    pd.DataFrame({"channel": ["Nd999Di"], "marker": ["X"], "marker_class": ["type"]}).to_csv(
        bad, sep="\t", index=False
    )
    with pytest.raises(PanelError, match="not in the FCS file"):
        read_panel(bad, channels, desc, modality="cytof")
    bad.write_text("channel\tmarker\tmarker_class\nNd142Di\tCD19\tlineage\n")
    with pytest.raises(PanelError, match="type/state/none"):
        read_panel(bad, channels, desc, modality="cytof")


def test_shared_markers_of_files_normalised_together():
    from immunoprofiler.io.panel import PanelError, shared_markers

    def var(markers, classes, channels=None):
        return pd.DataFrame(
            {"marker": markers, "marker_class": classes},
            index=channels or [f"ch{i}" for i in range(len(markers))],
        )

    a = var(["DNA1", "CD3", "CD4", "pS6"], ["none", "type", "type", "state"])
    out = shared_markers([a, a.copy()], names=["a.h5ad", "b.h5ad"])
    assert list(out.var.index) == ["CD3", "CD4", "pS6"]  # DNA etc. ('none') are not analysed
    assert list(out.var["channel"]) == ["ch1", "ch2", "ch3"]
    assert list(out.var["marker_class"]) == ["type", "type", "state"]
    assert out.channels == [["ch1", "ch2", "ch3"]] * 2 and out.dropped == {}
    # another instrument / panel: markers matched by name whatever the channel, order and
    # spelling; only the markers both have are kept, and what each file loses is said
    other = var(
        ["pS6", "CD8", "cd-3", "HLA-DR"], ["state", "type", "type", "type"], ["x", "y", "z", "w"]
    )
    out = shared_markers([a, other], names=["a.h5ad", "b.h5ad"])
    assert list(out.var.index) == ["CD3", "pS6"]
    assert out.channels == [["ch1", "ch3"], ["z", "x"]]
    assert out.dropped == {"a.h5ad": ["CD4"], "b.h5ad": ["CD8", "HLA-DR"]}
    # a marker used for clustering in one panel and reported as state in the other: state
    typed = var(["CD3", "pS6"], ["type", "type"])
    assert list(shared_markers([a, typed], names=["a", "b"]).var["marker_class"]) == [
        "type",
        "state",
    ]
    with pytest.raises(PanelError, match="share no 'type' marker"):
        shared_markers([a, var(["CD19", "pS6"], ["type", "state"])], names=["a", "b"])


def test_files_are_grouped_by_the_markers_of_their_panels():
    from immunoprofiler.io.panel import assign_panel_groups, panel_signature

    def sig(*markers, cls="type"):
        return panel_signature(
            pd.DataFrame({"marker": list(markers), "marker_class": [cls] * len(markers)})
        )

    lineage, myeloid = sig("CD3", "CD4", "CD19"), sig("CD14", "CD33", "HLA-DR")
    assert sig("CD3", "CD4", "CD19") == sig("cd-4", "CD19", "CD3")  # order and spelling
    assert sig("CD3") != sig("CD3", cls="state")
    sigs = [lineage, myeloid, lineage, None, myeloid, lineage]
    none = [""] * 6
    # detected: named after the panel file all of a group's files share, else panelN
    groups = assign_panel_groups(
        sigs,
        explicit=none,
        panels=["", "/p/myeloid v2.tsv", "", "", "/p/myeloid v2.tsv", ""],
        merge=False,
    )
    assert groups == ["panel1", "myeloid_v2", "panel1", "panel1", "myeloid_v2", "panel1"]
    # an unreadable header (None) joins the largest group; its job will say what is wrong
    assert assign_panel_groups(sigs, explicit=none, panels=none, merge=False)[3] == "panel1"
    # one panel: one group, "all"; merging: one group whatever the panels
    assert set(
        assign_panel_groups([lineage] * 3, explicit=[""] * 3, panels=[""] * 3, merge=False)
    ) == {"all"}
    assert set(assign_panel_groups(sigs, explicit=none, panels=none, merge=True)) == {"all"}
    # the sheet's panel_group wins over detection (a group may mix panels on purpose)
    explicit = ["a", "a", "b", "", "", ""]
    assert assign_panel_groups(sigs, explicit=explicit, panels=none, merge=False) == [
        "a",
        "a",
        "b",
        "a",
        "panel1",
        "panel2",
    ]
    assert assign_panel_groups([None, None], explicit=["", ""], panels=["", ""], merge=False) == [
        "all",
        "all",
    ]
