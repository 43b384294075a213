"""The per-layer ranking (terminal, Markdown, JSON) and the bars of the sweep tables, on fixed rows."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from rich.console import Console

from robustbench_w.engine.runs.stats import summarize
from robustbench_w.report.bars import bar, bars, scale
from robustbench_w.report.ranking import RankMetric, rank_layers, ranked
from robustbench_w.report.sweep import layer_ranking, rank_metric, render_sweep, summary_markdown

ERROR = RankMetric("error", "error", fraction=True, higher_is_better=False)
BASE = {"model": "m.pt", "dataset": "digits", "n": 100, "seed": 0, "loss": 0.5, "nonfinite": 0, "agreement": 0.9,
        "weight_change": 0.3}
META = {"model": "m.pt", "dataset": "digits", "split": "test", "n": 100, "targets": ["a"] * 4,
        "target_weights": 4321, "seed": 0, "device": "cpu", "per_layer": True,
        "units": ["features.0.weight", "features.3.weight", "head=classifier.*", "embed.weight"]}
WHOLE = {k: v for k, v in META.items() if k not in ("per_layer", "units")}
LAYERS = ["features.0.weight", "features.3.weight", "head", "embed.weight"]
ERRORS = {  # per layer: error at sigma 0.1 (two trials), 0.5 (two trials); sign
    "features.0.weight": ([0.06, 0.08], [0.30, 0.34], 0.20),
    "features.3.weight": ([0.05, 0.05], [0.10, 0.12], 0.20),
    "head": ([0.09, 0.11], [0.50, 0.60], 0.40),
    "embed.weight": ([0.05, 0.05], [0.05, 0.05], 0.05),
}


def per_layer_rows() -> pd.DataFrame:
    rows = [dict(BASE, layer="", distortion="none", spec="none", strength_name="", strength=math.nan, trial=0,
                 error=0.05, stochastic=False, agreement=1.0, weight_change=0.0)]
    for layer, (low, high, sign) in ERRORS.items():
        for strength, errors in ((0.1, low), (0.5, high)):
            rows += [dict(BASE, layer=layer, distortion="addnorm", spec="addnorm", strength_name="sigma",
                          strength=strength, trial=t, error=e, stochastic=True) for t, e in enumerate(errors)]
        rows.append(dict(BASE, layer=layer, distortion="sign", spec="sign", strength_name="", strength=math.nan,
                         trial=0, error=sign, stochastic=False))
    frame = pd.DataFrame(rows)
    frame["accuracy"] = 1 - frame["error"]
    return frame


def render(width: int, summary: pd.DataFrame, meta: dict) -> str:
    console = Console(record=True, width=width, force_terminal=False, color_system=None, file=open("/dev/null", "w"))
    render_sweep(summary, meta, console)
    return console.export_text()


# ------------------------------------------------------------------ ranking

def test_ranks_most_fragile_first_with_shared_ranks_for_ties():
    ranking = rank_layers(summarize(per_layer_rows()), ERROR)
    assert ranking["clean"] == 0.05 and [p["spec"] for p in ranking["points"]] == ["addnorm", "addnorm", "sign"]
    low, high, sign = ranking["points"]
    assert [e["layer"] for e in high["layers"]] == ["head", "features.0.weight", "features.3.weight", "embed.weight"]
    assert [e["rank"] for e in high["layers"]] == [1, 2, 3, 4]
    assert math.isclose(high["layers"][0]["change"], 0.50) and math.isclose(high["layers"][0]["mean"], 0.55)
    assert [(e["layer"], e["rank"]) for e in low["layers"]][2:] == [("features.3.weight", 3), ("embed.weight", 3)]
    assert [e["rank"] for e in sign["layers"]] == [1, 2, 2, 4]  # two layers at +15 pp share rank 2
    overall = ranking["overall"][0]["layers"]
    assert [e["layer"] for e in overall] == ["head", "features.0.weight", "features.3.weight", "embed.weight"]


def test_a_higher_is_better_metric_ranks_the_largest_drop_first():
    entries = [{"layer": "a", "change": -0.1}, {"layer": "b", "change": -0.3}, {"layer": "c", "change": math.nan}]
    up = RankMetric("agreement", "agreement", True, True)
    assert [e["layer"] for e in ranked(entries, [up.harm(e["change"]) for e in entries])] == ["b", "a", "c"]
    assert up.change_text(-0.3) == "-30.00" and RankMetric("kl", "kl", False, False).change_text(0.25) == "+0.25"


def test_the_ranking_metric_follows_the_report():
    summary = summarize(per_layer_rows())
    assert rank_metric(summary, META) == ERROR
    unlabelled = per_layer_rows().assign(error=math.nan)
    assert rank_metric(summarize(unlabelled), META).name == "agreement"
    lm = {**META, "report_metrics": ["perplexity"],
          "metrics": [{"name": "perplexity", "column": "perplexity", "higher_is_better": False,
                       "bounds": [1, math.inf]}]}
    assert rank_metric(summary.assign(perplexity_mean=1.0), lm) == RankMetric("perplexity", "perplexity", False, False)
    assert layer_ranking(summarize(per_layer_rows().drop(columns="layer")), META) is None


def test_per_layer_terminal_report_snapshot_at_80_columns(snapshot):
    text = render(80, summarize(per_layer_rows()), META)
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "0.5   │ head +50.00, features.0.weight +27.00, features.3.weight +6.00," in text
    snapshot("per_layer_80.txt", text)


def test_per_layer_terminal_report_names_the_top_layers_and_counts_the_rest():
    rows = per_layer_rows()
    many = pd.concat([rows] + [rows[rows["layer"] == "embed.weight"].assign(layer=f"extra{i}") for i in range(8)])
    text = render(200, summarize(many), META)
    assert ", … 4 more" in text and "all" not in text.split("sign")[0]


def test_per_layer_markdown_snapshot(snapshot):
    md = summary_markdown(summarize(per_layer_rows()), META)
    assert "| layer | sigma=0.1 | sigma=0.5 |" in md and "| head | +5.00 (1) | +50.00 (1) |" in md
    snapshot("per_layer.md", md)


# ------------------------------------------------------------------ bars

@pytest.mark.parametrize(("fraction", "width", "text"), [
    (0.0, 4, "    "), (1.0, 4, "████"), (0.5, 4, "██  "), (1 / 32, 4, "▏   "), (0.3, 2, "▋ "),
    (2.0, 3, "███"), (-1.0, 3, "   "), (math.nan, 3, "   "),
])
def test_a_bar_is_eighths_of_cells(fraction, width, text):
    assert bar(fraction, width) == text


def test_bars_share_one_scale_from_the_clean_value():
    assert scale([0.2, 0.1], clean=0.05) == (0.05, 0.2)
    assert bars([0.05, 0.125, 0.2, math.nan, math.inf], clean=0.05, width=4) == \
        ["    ", "██  ", "████", "    ", "████"]
    assert bars([0.3, 0.3], clean=0.3, width=2) == ["  ", "  "]
    assert bars([0.9, 0.95, 0.8], clean=1.0, width=4, higher_is_better=True) == ["██  ", "█   ", "████"]
    assert bars([-math.inf, 0.5], clean=1.0, width=2, higher_is_better=True) == ["██", "██"]


def curve_rows() -> pd.DataFrame:
    rows = [dict(BASE, distortion="none", spec="none", strength_name="", strength=math.nan, trial=0, error=0.05,
                 stochastic=False)]
    for s, e in ((0.1, 0.06), (0.2, 0.09), (0.3, 0.15), (0.5, 0.32), (0.75, 0.61), (1.0, 0.85)):
        rows.append(dict(BASE, distortion="addnorm", spec="addnorm", strength_name="sigma", strength=s, trial=0,
                         error=e, stochastic=False))
    frame = pd.DataFrame(rows)
    frame["accuracy"] = 1 - frame["error"]
    return frame


def test_the_sweep_table_shows_the_shape_of_the_curve(snapshot):
    text = render(80, summarize(curve_rows()), WHOLE)
    lines = [line for line in text.splitlines() if line.startswith(("0.", "1 "))]
    lengths = [len(line.split("│")[3].strip()) for line in lines]
    assert lengths == sorted(lengths) and lengths[-1] == 10 and "(bars: error from 5% to 85%)" in text
    assert max(len(line) for line in text.splitlines()) <= 80
    snapshot("sweep_curve_80.txt", text)


def test_bars_narrow_then_go_on_a_narrow_console():
    summary = summarize(curve_rows())
    widths = {w: render(w, summary, WHOLE) for w in (80, 68, 64)}
    assert "│ ██████████ │" in widths[80] and "│ ██████ │" in widths[68] and "bars:" in widths[68]
    assert "bars:" not in widths[64] and "█" not in widths[64]
    assert all(len(line) <= w for w, text in widths.items() for line in text.splitlines())
