"""report.html: self-contained, every section, counts only through the suppressed cells."""

import re
import shutil
import subprocess
from html.parser import HTMLParser

import pytest

from clinical_mborl.report.model import SECTIONS
from clinical_mborl.report.render import identifier_hits

from .counts import html_count_cells

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: list[str] = []
        self.h2: list[str] = []
        self.srcs: list[str] = []
        self.hrefs: list[str] = []
        self._in_h2 = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids.append(a["id"])
        if tag == "h2":
            self._in_h2 = True
            self.h2.append("")
        for key, bucket in (("src", self.srcs), ("href", self.hrefs)):
            if key in a:
                bucket.append(a[key])

    def handle_endtag(self, tag):
        if tag == "h2":
            self._in_h2 = False

    def handle_data(self, data):
        if self._in_h2:
            self.h2[-1] += data


@pytest.fixture(scope="module")
def page(rendered):
    paths, report, ids = rendered
    html = paths.html.read_text()
    parser = _Collect()
    parser.feed(html)
    return html, parser, report, ids, paths


def test_every_section_is_present_in_order(page):
    html, parser, _, _, _ = page
    anchors = [a for a, _, _ in SECTIONS]
    assert [i for i in parser.ids if i in anchors] == anchors
    for (_, heading, _), h2 in zip(SECTIONS, parser.h2, strict=True):
        assert heading in h2


def test_no_external_reference(page):
    html, parser, _, _, _ = page
    assert "http://" not in html and "https://" not in html
    assert not re.search(r"(src|href)\s*=\s*[\"']//", html)
    assert "<link" not in html and "<script" not in html and "@import" not in html and "url(" not in html
    assert parser.srcs and all(s.startswith("data:image/png;base64,") for s in parser.srcs)
    assert all(h.startswith("#") for h in parser.hrefs)


def test_figures_embedded(page):
    _, parser, report, _, _ = page
    # calibration, dynamics, doses, forest, subgroups, importance, sensitivity + one per case
    assert len(parser.srcs) == 7 + len(report.trajectories)


def test_counts_in_html_are_suppressed(page):
    html, _, _, _, _ = page
    cells = html_count_cells(html)
    assert len(cells) > 30
    assert not [c for c in cells if c.replace(",", "").isdigit() and 1 <= int(c.replace(",", "")) <= 10]
    assert "&lt;11" in html


def test_no_identifiers_and_json_decision(page):
    html, _, _, ids, paths = page
    js = paths.json.read_text()
    assert identifier_hits(html, ids) == 0 and identifier_hits(js, ids) == 0
    assert '"gate"' in js and '"checks"' in js


def test_identifier_hits_matches_whole_short_tokens_only():
    assert identifier_hits("patient 12 seen", ["12"]) == 1
    assert identifier_hits("value 123", ["12"]) == 0
    assert identifier_hits("xxSTAY12345yy", ["STAY12345"]) == 1
    assert identifier_hits('<img src="data:image/png;base64,STAY12345AAAA">', ["STAY12345"]) == 0
    # numeric ids: whole integers only, never digits inside a decimal number or a digest
    assert identifier_hits('{"n": 30000123}', ["30000123"]) == 1
    assert identifier_hits("stay 30000123.", ["30000123"]) == 1
    assert identifier_hits('{"ece": 0.130000123}', ["30000123"]) == 0
    assert identifier_hits("sha " + "a30000123" + "0" * 55, ["30000123"]) == 0


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_headless_chromium_renders_every_section(page, tmp_path):
    _, _, _, _, paths = page
    common = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
              "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
              f"--user-data-dir={tmp_path / 'profile'}"]
    url = paths.html.resolve().as_uri()
    dom = subprocess.run([*common, "--dump-dom", url], capture_output=True, text=True, timeout=180)
    assert dom.returncode == 0, dom.stderr[-2000:]
    parser = _Collect()
    parser.feed(dom.stdout)
    for anchor, heading, _ in SECTIONS:
        assert anchor in parser.ids
        assert any(heading in h for h in parser.h2), heading
    shot = tmp_path / "report.png"
    res = subprocess.run([*common, f"--screenshot={shot}", "--window-size=1280,4000", "--hide-scrollbars", url],
                         capture_output=True, text=True, timeout=180)
    assert res.returncode == 0 and shot.is_file() and shot.stat().st_size > 20_000, res.stderr[-2000:]
