"""Writing ``wrobust report``: result files in, one ``.html`` page (self-contained) or a ``.md`` file with its
figures beside it out."""

from __future__ import annotations

from pathlib import Path

from .document import build_report
from .files import atomic_write
from .formats import REPORT_SUFFIXES, check_output_path
from .html import report_html
from .markdown import write_markdown
from .results import load_all


def write_report(paths: list[Path], output: Path, metric: str | None = None, title: str = "wrobust report",
                 force: bool = False) -> list[Path]:
    """Read the result files and write the report; returns the files written (figures first). ``force``: a
    ``.md`` report's figures may replace files of those names that it did not write."""
    check_output_path(output, REPORT_SUFFIXES)
    report = build_report(load_all(paths), metric)
    if output.suffix.lower() == ".md":
        return write_markdown(report, output, title, force)
    page = report_html(report, title)
    return [atomic_write(output, lambda p: p.write_text(page, encoding="utf-8"))]
