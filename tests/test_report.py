"""Snapshot of the terminal report, rendered on a fixed-width recording console."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pandas as pd
import pytest
from rich.console import Console

from robustbench_w.engine.runs.stats import summarize
from robustbench_w.report.sweep import render_sweep, summary_markdown
from robustbench_w.report.text import fit_names, pack, shorten_name

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


# ------------------------------------------------------------------ 80 columns (issue 11)

META_80 = {**META, "model": "checkpoints/resnet18-cifar10-sign-projection.pt", "dataset": "cifar10", "n": 10000,
           "targets": ["a"] * 21, "target_weights": 11_172_032, "device": "cuda:0",
           "normalization_text": "(x/255 - (0.4914, 0.4822, 0.4465)) / (0.247, 0.2435, 0.2616)",
           "normalization_source": "the checkpoint"}


def render_at(width: int, summary: pd.DataFrame, meta: dict) -> str:
    console = Console(record=True, width=width, force_terminal=False, color_system=None)
    render_sweep(summary, meta, console)
    return console.export_text()


def test_sweep_report_snapshot_at_80_columns(snapshot):
    text = render_at(80, summarize(fixed_rows()), META_80)
    assert max(len(line) for line in text.splitlines()) <= 80
    snapshot("sweep_report_80.txt", text)


@pytest.mark.parametrize("width", [80, 100, 120])
def test_the_sweep_header_breaks_between_its_parts_not_inside_them(width):
    head = render_at(width, summarize(fixed_rows()), META_80).split("\naddnorm")[0].splitlines()
    assert all(len(line) <= width for line in head)
    parts = "; ".join(head).split("; ")  # every line holds whole parts
    assert parts[0].endswith("(test, n=10000): clean error 5.00%") or parts[1] == "clean error 5.00%"
    norm = next(p for p in parts if p.startswith("normalisation ("))
    assert norm.startswith("normalisation (x/255 - (0.4914, 0.4822, 0.4465)) / (0.247, 0.2435, 0.2616)")
    assert "from the checkpoint" in "\n".join(head) and parts[-1] == "cuda:0"


def unlabelled_rows() -> pd.DataFrame:
    frame = fixed_rows()
    frame["error"], frame["accuracy"], frame["loss"] = math.nan, math.nan, math.nan
    frame.loc[frame["distortion"] == "addnorm", "agreement"] = [0.85, 0.90, 0.95]
    return frame


def test_unlabelled_sweeps_show_the_agreement_interval(snapshot):
    summary = summarize(unlabelled_rows())
    text = render_at(80, summary, {**META, "dataset": "synthetic"})
    assert "error %" not in text and "clean error n/a (no labels: agreement only)" in text
    noise = text.split("addnorm")[1].split("sign")[0]
    assert "agree %" in noise and "95% CI" in noise
    assert "[77.58, 100.00]" in noise  # 90 +- t(0.975, 2) * 5 / sqrt(3), clipped at 100
    snapshot("sweep_unlabelled_80.txt", text)
    md = summary_markdown(summary, META)
    assert "| sigma | agree % | 95% CI | Δw | trials |" in md


@pytest.mark.parametrize(("name", "width", "short"), [
    ("layer1.0.conv1.weight", 30, "layer1.0.conv1.weight"),
    ("layer4.0.downsample.0.weight", 20, "l4.0.d.0.weight"),
    ("encoder.layer.11.attention.self.query.weight", 28, "e.l.11.a.self.query.weight"),
    ("encoder.layer.11.attention.self.query.weight", 20, "e.l.11.a.s.q.weight"),
    ("a_very_long_single_name_without_any_dots", 12, "a_v…any_dots"),
])
def test_names_are_shortened_keeping_their_distinguishing_end(name, width, short):
    assert shorten_name(name, width) == short and len(short) <= width


def test_names_that_would_collide_are_left_whole_and_lines_pack_whole_pieces():
    assert fit_names(["attn.weight", "alpha.weight"], 8) == ["attn.weight", "alpha.weight"]  # both a.weight
    assert fit_names(["layer1.conv.weight", "layer2.conv.weight"], 14) == ["l1.conv.weight", "l2.conv.weight"]
    assert pack(["aaaa", "bb", "cccccc", "d"], 10) == ["aaaa; bb", "cccccc; d"]
    assert pack(["a" * 20, "b"], 10) == ["a" * 20, "b"]


def test_the_progress_bar_shows_elapsed_eta_and_points_per_second():
    from rich.progress import TimeElapsedColumn, TimeRemainingColumn

    from robustbench_w.report.console import RateColumn, progress_columns

    columns = progress_columns()
    assert any(isinstance(c, TimeElapsedColumn) for c in columns)
    assert any(isinstance(c, TimeRemainingColumn) for c in columns)
    rate = next(c for c in columns if isinstance(c, RateColumn))

    class Task:
        finished_speed, speed = None, 2.5

    assert rate.render(Task()).plain == "2.5 pts/s"
    Task.speed = 0.05
    assert rate.render(Task()).plain == "3.0 pts/min"
    Task.speed = None
    assert rate.render(Task()).plain == ""
