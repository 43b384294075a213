"""``wrobust report``: a self-contained HTML page (parsed here, and opened in a real headless browser where one
is installed) and Markdown with its figures beside it."""

from __future__ import annotations

import base64
import importlib.util
import shutil
import subprocess
import sys
from html.parser import HTMLParser

import pytest

PNG = b"\x89PNG\r\n\x1a\n"
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
needs_matplotlib = pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None,
                                      reason="matplotlib (the [plot] extra) is not installed")


class Page(HTMLParser):
    """What a test needs of a page: images, tables (as rows of cell texts), headings, references elsewhere."""

    def __init__(self, text: str):
        super().__init__()
        self.images, self.tables, self.headings, self.external, self.tags = [], [], [], [], set()
        self._cell, self._heading = None, None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.add(tag)
        if tag == "img":
            self.images.append(attrs.get("src", ""))
        for key in ("src", "href"):
            if key in attrs and not attrs[key].startswith(("data:", "#")):
                self.external.append(attrs[key])
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = ""
        elif tag in ("h1", "h2", "h3", "h4"):
            self._heading = ""

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self.tables[-1][-1].append(self._cell)
            self._cell = None
        elif tag in ("h1", "h2", "h3", "h4"):
            self.headings.append(self._heading)
            self._heading = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data
        if self._heading is not None:
            self._heading += data


@pytest.fixture(scope="module")
def page_file(sweep_results, tmp_path_factory):
    """The report of two sweeps and a per-layer sweep, written by the command."""
    from robustbench_w.cli import main

    path = tmp_path_factory.mktemp("report") / "report.html"
    assert main(["report", str(sweep_results["a.json"]), str(sweep_results["b.csv"]), "-o", str(path), "-q"]) == 0
    return path


@needs_matplotlib
def test_the_page_embeds_its_figures_and_has_the_tables(page_file):
    text = page_file.read_text()
    page = Page(text)
    assert len(page.images) == 2  # curves and the effective-bits frontier
    for src in page.images:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1]).startswith(PNG)
    assert page.external == [] and not {"script", "link", "iframe"} & page.tags
    assert "url(" not in text and "@import" not in text and "http" not in text
    assert page.headings[:3] == ["wrobust report", "Figures", "Comparison"]
    comparison = page.tables[0]
    assert comparison[0][:4] == ["point", "A (%)", "B (%)", "B − A (pp)"] and len(comparison) == 11
    meta = dict(row for row in page.tables[1][1:])
    assert meta["model"] == "builtin:digits-mlp" and meta["dataset"] == "digits" and len(meta["model_sha256"]) == 64
    summaries = [t for t in page.tables if t[0][:2] == ["sigma", "error (%)"]]
    assert len(summaries) == 2 and len(summaries[0]) == 8  # a header and 7 noise strengths, per file
    assert summaries[0][1][:2] == ["0", "2.54"]  # sigma = 0 is the clean model's 2.54% error


@needs_matplotlib
def test_markdown_report_writes_its_figures_beside_it(run_cli, sweep_results, tmp_path):
    code, out, err = run_cli("report", sweep_results["a.json"], sweep_results["layers.csv"], "-o", tmp_path / "r.md")
    assert (code, err) == (0, "")
    assert out.splitlines() == [f"wrote {tmp_path / 'r-curves.png'}", f"wrote {tmp_path / 'r-layers.png'}",
                                f"wrote {tmp_path / 'r.md'}"]  # no frontier: the per-layer file has no bits
    md = (tmp_path / "r.md").read_text()
    assert "](r-curves.png)" in md and "](r-layers.png)" in md and "## Runs" in md
    assert "#### 1.weight: addnorm" in md and "| sigma | error (%) |" in md
    assert "> no comparison: builtin:digits-mlp (a), builtin:digits-mlp (layers): no point in common" in md
    for name in ("r-curves.png", "r-layers.png"):
        assert (tmp_path / name).read_bytes().startswith(PNG)


def test_without_matplotlib_the_report_says_so(run_cli, sweep_results, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    code, _, err = run_cli("report", sweep_results["a.json"], "-o", tmp_path / "r.html")
    page = Page((tmp_path / "r.html").read_text())
    assert code == 0 and page.images == [] and "no figures: matplotlib is not installed" in (tmp_path / "r.html").read_text()


def test_report_errors_are_one_line_and_keep_the_old_report(run_cli, sweep_results, tmp_path):
    old = tmp_path / "r.html"
    old.write_text("earlier report")
    code, _, err = run_cli("report", sweep_results["a.json"], tmp_path / "gone.csv", "-o", old)
    assert code == 2 and err.strip() == f"wrobust: error: {tmp_path / 'gone.csv'}: no such file"
    assert old.read_text() == "earlier report"
    code, _, err = run_cli("report", sweep_results["a.json"], "-o", tmp_path / "r.pdf")
    assert code == 2 and "unknown output format '.pdf' (use .html, .md)" in err


def browser() -> str | None:
    return next((path for name in BROWSERS if (path := shutil.which(name))), None)


@needs_matplotlib
@pytest.mark.skipif(browser() is None, reason="no headless browser (chromium) installed")
def test_the_page_renders_in_a_headless_browser_without_network(page_file, tmp_path):
    from matplotlib.image import imread

    shot = tmp_path / "shot.png"
    cmd = [browser(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--host-resolver-rules=MAP * ~NOTFOUND", f"--user-data-dir={tmp_path / 'profile'}",
           "--window-size=1200,1600", f"--screenshot={shot}", page_file.as_uri()]
    subprocess.run(cmd, capture_output=True, timeout=120, check=False)
    assert shot.is_file(), "the browser wrote no screenshot"
    image = imread(shot)[..., :3]
    assert image.shape[:2] == (1600, 1200)
    blue = (abs(image - [0, 0x72 / 255, 0xB2 / 255]).max(axis=-1) < 0.03).sum()
    orange = (abs(image - [0xD5 / 255, 0x5E / 255, 0, ]).max(axis=-1) < 0.03).sum()
    assert blue > 100 and orange > 100  # the embedded figures were decoded and drawn: both series' colours show


def test_the_report_compares_the_files_that_share_points_with_the_first(sweep_results, monkeypatch):
    from robustbench_w.report.document import build_report
    from robustbench_w.report.results import load_all

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # the tables only, quickly
    report = build_report(load_all([sweep_results[n] for n in ("a.json", "b.csv", "layers.csv")]))
    assert report.comparison.labels == ["builtin:digits-mlp (a)", "builtin:digits-mlp (b)"]
    assert ("compared without builtin:digits-mlp (layers): no distorted point in common with builtin:digits-mlp (a)"
            in report.notes)
    assert [r.title for r in report.runs] == [str(sweep_results[n]) for n in ("a.json", "b.csv", "layers.csv")]
