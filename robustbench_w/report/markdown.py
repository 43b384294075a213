"""``wrobust report -o report.md``: the report as Markdown, its figures as PNG files beside it
(``report-curves.png``, ``report-frontier.png``, ``report-layers.png``), linked by relative paths."""

from __future__ import annotations

from pathlib import Path

from ..errors import InputFileError
from .comparison import comparison_markdown
from .document import Report, Table
from .figures import save_figure
from .files import atomic_write


def figure_path(output: Path, kind: str) -> Path:
    return output.with_name(f"{output.stem}-{kind}.png")


def report_markdown(report: Report, output: Path, title: str = "wrobust report") -> str:
    lines = [f"# {title}\n", f"{report.metric.name} of {len(report.runs)} result file(s).\n"]
    lines += [f"> {n}\n" for n in report.notes]
    if report.figures:
        lines.append("## Figures\n")
        for f in report.figures:
            lines += [f"![{f.caption}]({figure_path(output, f.kind).name})\n", f"*{f.caption}*\n"]
    if report.comparison is not None:
        lines.append(comparison_markdown(report.comparison, heading="## Comparison"))
    lines.append("## Runs\n")
    for run in report.runs:
        lines += [f"### {run.title}\n", _table(Table("", ["meta", "value"], [[k, f"`{v}`"] for k, v in run.meta]))]
        lines += [f"#### {t.heading}\n\n" + _table(t) for t in run.tables]
    return "\n".join(lines)


def write_markdown(report: Report, output: Path, title: str = "wrobust report", force: bool = False) -> list[Path]:
    """The figures first, then the Markdown that links them; each file written atomically. A figure file that
    exists and is not this report's own (the earlier ``output`` does not link it) is refused unless ``force``."""
    check_figures([figure_path(output, f.kind) for f in report.figures], output, force)
    written = [save_figure(f.figure, figure_path(output, f.kind)) for f in report.figures]
    text = report_markdown(report, output, title)
    written.append(atomic_write(output, lambda p: p.write_text(text)))
    return written


def check_figures(paths: list[Path], output: Path, force: bool) -> None:
    """Before anything is written: a figure would replace a file of the user's (one that exists and that an earlier
    report at ``output`` does not link) only with ``force``."""
    if force:
        return
    own = output.read_text(errors="replace") if output.is_file() else ""
    for path in paths:
        if path.exists() and f"]({path.name})" not in own:
            raise InputFileError(f"{path}: exists and is not a figure of {output}; the report would replace it "
                                 "(pass --force to replace it, or choose another -o name)")


def _table(table: Table) -> str:
    def row(cells: list[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    return "\n".join([row(table.headers), "|" + "---|" * len(table.headers), *map(row, table.rows)]) + "\n"
