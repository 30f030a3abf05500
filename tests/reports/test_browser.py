"""report.html, align.html and fingerprint.html of small runs, opened in headless Chromium:
no console errors, and every declared figure rendered. Screenshots are kept in
``test-artifacts/screenshots/`` (``$INTERP_TEST_ARTIFACTS`` moves it).

Outside CI a missing browser skips with the reason; under CI (``CI=true``) it fails:
``.ci/run`` installs Debian's chromium when it is absent.
"""

from __future__ import annotations

import os
from pathlib import Path

import plotly.graph_objects as go
import pytest

from interp.reports.html import write_html
from tests.reports.browser import CHROMIUM, render

ARTIFACTS = Path(os.environ.get("INTERP_TEST_ARTIFACTS",
                                Path(__file__).resolve().parents[2] / "test-artifacts"))


def _need_browser() -> None:
    missing = []
    if CHROMIUM is None:
        missing.append("chromium (apt-get install chromium)")
    try:
        import playwright  # noqa: F401
    except ImportError:
        missing.append("playwright (pip install -e '.[dev]')")
    if missing:
        reason = f"no headless browser: missing {', '.join(missing)}"
        if os.environ.get("CI"):
            pytest.fail(reason + " (CI must have it: .ci/run installs it)")
        pytest.skip(reason)


@pytest.fixture(scope="module")
def reports(digits_run, owl_run, aligned_owl, fingerprinted):
    _need_browser()
    digits_dir, owl_dir = digits_run[0], owl_run[0]
    return {"digits-report": digits_dir / "report.html", "owl-report": owl_dir / "report.html",
            "align": owl_dir / "align.html", "fingerprint": owl_dir / "fingerprint.html"}


@pytest.mark.parametrize("name", ["digits-report", "owl-report", "align", "fingerprint"])
def test_report_renders_every_figure_without_errors(reports, name):
    r = render(reports[name], ARTIFACTS / "screenshots" / f"{name}.png")
    assert r.errors == []
    assert r.declared >= 1 and r.rendered == r.declared, r


def test_a_broken_figure_is_caught(tmp_path):
    """The check itself: a page whose second figure cannot be drawn fails it."""
    _need_browser()
    good = go.Figure(go.Bar(x=["a", "b"], y=[1, 2]))
    path = tmp_path / "broken.html"
    write_html(path, "broken on purpose", [("figures", "", [good, good])])
    html = path.read_text()
    # corrupt the second figure's call: its data is no longer valid JSON for Plotly
    cut = html.rindex("Plotly.newPlot(")
    path.write_text(html[:cut] + "Plotly.newPlot(undefinedDiv, {{" + html[cut + 15:])
    r = render(path, ARTIFACTS / "screenshots" / "broken-on-purpose.png")
    assert not r.ok
    assert r.errors and r.rendered == 1 and r.declared == 2
