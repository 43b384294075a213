"""Snapshot of the terminal report, rendered on a fixed-width recording console."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pandas as pd
from rich.console import Console

from robustbench_w.engine.stats import summarize
from robustbench_w.report.sweep import render_sweep, summary_markdown

SNAPSHOTS = Path(__file__).parent / "snapshots"


def fixed_rows() -> pd.DataFrame:
    base = {"model": "m.pt", "dataset": "digits", "n": 100, "seed": 0, "loss": 0.5, "nonfinite": 0}
    rows = [dict(base, distortion="none", spec="none", strength_name="", strength=math.nan, trial=0, error=0.05,
                 agreement=1.0, weight_change=0.0, stochastic=False)]
    for t, err in enumerate([0.10, 0.12, 0.14]):
        rows.append(dict(base, distortion="addnorm", spec="addnorm", strength_name="sigma", strength=0.2, trial=t,
                         error=err, agreement=0.9, weight_change=0.4, stochastic=True))
    rows.append(dict(base, distortion="sign", spec="sign", strength_name="", strength=math.nan, trial=0, error=0.2,
                     agreement=0.8, weight_change=1.5, stochastic=False))
    frame = pd.DataFrame(rows)
    frame["accuracy"] = 1 - frame["error"]
    return frame


META = {"model": "m.pt", "dataset": "digits", "split": "test", "n": 100, "targets": ["a", "b"],
        "target_weights": 1234, "seed": 0, "device": "cpu"}


def check_snapshot(name: str, text: str) -> None:
    path = SNAPSHOTS / name
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        path.write_text(text)
    assert text == path.read_text(), f"{name} changed; rerun with UPDATE_SNAPSHOTS=1 if intended"


def test_terminal_report_snapshot():
    console = Console(record=True, width=100, force_terminal=False, color_system=None)
    render_sweep(summarize(fixed_rows()), META, console)
    check_snapshot("sweep_report.txt", console.export_text())


def test_markdown_report_snapshot():
    check_snapshot("sweep_report.md", summary_markdown(summarize(fixed_rows()), META))
