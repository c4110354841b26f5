"""`snakemake --report` on the demo: every section with its images, self-contained, and it opens
in a real browser (headless Chromium, Debian's `chromium`; .ci/run installs it)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

from .conftest import run_snakemake

pytestmark = pytest.mark.slow

SECTIONS = (
    "Quality control",
    "scRNA-seq",
    "Cytometry",
    "Immune profile",
    "Immune state",
    "Provenance",
)
FIGURES = (
    "umap.png",
    "umap_uncorrected.png",
    "marker_dotplot.png",
    "metacluster_heatmap.png",
    "abundance.png",
    "composition.png",
    "cross_modality.png",
    "differential_abundance.png",
    "differential_state_heatmap.png",
    "differential_state_volcano.png",
    "differential_expression_top.png",
    "qc_status.png",
    "P1_pre.png",
)
TABLES = (
    "rna_qc.tsv",
    "cyto_qc.tsv",
    "qc_status.tsv",
    "composition_wide.tsv",
    "cross_modality.tsv",
    "differential_abundance.tsv",
    "differential_state.tsv",
    "differential_expression.tsv",
    "differential_expression_samples.tsv",
    "provenance.tsv",
    "config_used.yaml",
)
# anything the page would load from elsewhere: scripts, styles, images, frames, fonts
EXTERNAL = re.compile(
    r"""(?:src|href|action|poster|data)\s*=\s*["']?\s*(?:https?:)?//"""
    r"""|url\(\s*["']?\s*(?:https?:)?//|@import\s+["']?(?:https?:)?//""",
    re.I,
)


@pytest.fixture(scope="module")
def report(demo_run):
    out = demo_run / "results" / "report.html"
    run_snakemake(demo_run, "--report", str(out))
    return out


def _chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        if os.environ.get("IMMUNOPROFILER_REQUIRE_CHROMIUM") == "1":
            pytest.fail("IMMUNOPROFILER_REQUIRE_CHROMIUM=1 but no chromium is installed")
        pytest.skip("headless Chromium is not installed (apt-get install chromium)")
    return exe


def test_report_is_self_contained(report):
    html = report.read_text(encoding="utf-8")
    assert len(html) > 100_000
    bad = sorted({m.group(0) for m in EXTERNAL.finditer(html)})
    assert not bad, f"the report refers to outside resources: {bad[:10]}"
    for name in FIGURES + TABLES:  # every result is embedded in the page itself
        assert f"filename={name};base64," in html, name


def test_report_renders_in_chromium(report, tmp_path):
    exe = _chromium()
    cmd = [
        exe,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        f"--user-data-dir={tmp_path / 'profile'}",
        # no network at all: whatever the page needs must be inside it
        "--proxy-server=127.0.0.1:9",
        "--host-resolver-rules=MAP * ~NOTFOUND",
        "--virtual-time-budget=15000",
        "--enable-logging=stderr",
        "--v=0",
        "--dump-dom",
        report.as_uri(),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    dom = proc.stdout
    assert proc.returncode == 0 and "<body" in dom, proc.stderr[-3000:]
    # a fetch from outside would fail on the dead proxy / resolver and be logged
    for err in ("ERR_PROXY_CONNECTION_FAILED", "ERR_NAME_NOT_RESOLVED", "ERR_FILE_NOT_FOUND"):
        assert err not in proc.stderr, [line for line in proc.stderr.splitlines() if err in line]
    assert "Uncaught" not in proc.stderr, proc.stderr[-3000:]
    # what React rendered into the page (the data scripts stay outside #app)
    start = dom.index('<div id="app"')
    app = dom[start : dom.find("<script", start)]
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", app))
    for section in SECTIONS:
        assert section in text, (section, text[:2000])
    assert "immunoprofiler turned each sample" in text
    assert 'src="data:image/svg+xml' in app  # the logo, drawn from inside the file
