"""The terminal view of the reproduce grid: the table and each claim with its verdict and reason, fitted to the
terminal's width.

The table is the Markdown report's transposed: one row per column (clean, then the paper's strengths, the
strength on a second line), one column per rule, each cell the mean error above its interval. Rule headers
break after ``:`` and at ``,``, so that six rules fit 80 columns without cutting a header; a narrower
terminal wraps headers and cells further (rich), never truncates them.
"""

from __future__ import annotations

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .cells import Interval
from .report import cell_matrix, seed_warning
from .reproduce import GridResult


def cell_text(iv: Interval) -> str:
    """``mean`` over ``low-high`` (in %), or the mean alone without an interval."""
    if iv.mean != iv.mean:
        return "-"
    mean = f"{100 * iv.mean:.1f}"
    return mean if not iv.defined else f"{mean}\n{100 * iv.low:.1f}-{100 * iv.high:.1f}"


def header(rule: str) -> str:
    """A rule's header, breakable after ``:`` and at ``,`` (``power:beta=0.5`` -> ``power: beta=0.5``)."""
    return rule.replace(":", ": ").replace(",", ", ")


def grid_table(result: GridResult) -> Table:
    columns, matrix = cell_matrix(result)
    m = result.meta
    title = (f"test error % on {m['dataset']}, mean and interval over {len(m['seeds'])} seeds"
             f"{' x trials' if m['trials'] > 1 else ''}")
    table = Table(title=escape(title), title_justify="left", box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False,
                  collapse_padding=True, show_lines=True)
    table.add_column("test", justify="left", overflow="fold")
    for rule in matrix:
        table.add_column(escape(header(rule)), justify="right", overflow="fold")
    for i, column in enumerate(columns):
        label = "clean" if i == 0 else column.label.replace(" ", "\n")
        table.add_row(escape(label), *(escape(cell_text(cells[i])) for cells in matrix.values()))
    return table


def claim_lines(result: GridResult) -> list[str]:
    """Per claim: ``(id) verdict: statement``, then its one-line reason, indented."""
    lines = seed_warning(result)[:1]
    for c in result.claims:
        lines += [f"({c.id}) {c.verdict}: {c.statement}", f"    {c.reason.replace('`', '')}"]
    return lines


def render_grid(result: GridResult, console: Console) -> None:
    console.print(grid_table(result))
    for line in claim_lines(result):
        console.print(line, markup=False, highlight=False)
