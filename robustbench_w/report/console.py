"""Consoles for the terminal and the progress bar of long work (quiet in pipes and with ``--quiet``)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Column
from rich.text import Text

PIPE_WIDTH = 160  # output to a file or pipe is not wrapped at 80 columns


def stdout_console() -> Console:
    wide = not sys.stdout.isatty() and "COLUMNS" not in os.environ
    return Console(width=PIPE_WIDTH if wide else None)


def stderr_console() -> Console:
    return Console(stderr=True)


class RateColumn(ProgressColumn):
    """Points per second, once there is a rate to show."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("" if speed is None else f"{speed:.1f} pts/s" if speed >= 0.1 else f"{60 * speed:.1f} pts/min")


def progress_columns() -> list[ProgressColumn]:
    """What the bar shows: the point, the bar, done/total, elapsed and remaining time, points per second. The
    point's label takes the width that is left (cut with an ellipsis), so the bar stays on one line."""
    def fixed() -> Column:
        return Column(no_wrap=True)

    label = Column(no_wrap=True, overflow="ellipsis", ratio=1)
    return [TextColumn("{task.description}", table_column=label), BarColumn(bar_width=20, table_column=fixed()),
            MofNCompleteColumn(table_column=fixed()), TimeElapsedColumn(table_column=fixed()),
            TextColumn("eta", table_column=fixed()), TimeRemainingColumn(table_column=fixed()),
            RateColumn(table_column=fixed())]


@contextmanager
def progress_bar(quiet: bool, description: str = "sweep") -> Iterator[Callable[[int, int, str], None] | None]:
    """A rich progress bar on a terminal's stderr; ``None`` (no output at all) when quiet or piped."""
    if quiet or not sys.stderr.isatty():
        yield None
        return
    with Progress(*progress_columns(), console=stderr_console(), transient=True, expand=True) as bar:
        task = bar.add_task(description, total=None)

        def update(done: int, total: int, label: str) -> None:
            bar.update(task, completed=done, total=total, description=f"{description}: {label}")

        yield update
