"""Which layers are fragile: the summary of a per-layer sweep ranked by the change of a metric over the clean
model, at each point (distortion spec x strength), most fragile first.

**Ranking.** At each point every unit (layer) gets the change of the metric's mean over the clean model's
value; the unit whose change is largest in the worse direction (up for an error, down for an agreement) is
rank 1. Units with the same change share a rank (1, 2, 2, 4) and keep the model's order; a unit without a value
comes last. Per spec, the
units are also ordered over all its strengths, by the mean of their changes (``overall``): the order of the
rows of the Markdown table.

**Where it shows.** On the terminal one line per strength (the most fragile units first, at most
:data:`TERMINAL_TOP` of them), in ``.md`` a table of units x strengths with the change and the rank at each
strength, and in ``.json`` the ``ranking`` block (:func:`rank_layers`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import pandas as pd

from .text import num, strength_text

LAYER = "layer"
TERMINAL_TOP = 8  # units named per strength on the terminal; the files have all of them


@dataclass(frozen=True)
class RankMetric:
    """The metric a ranking is made on: its name, summary column, whether it is a fraction (changes in
    percentage points) and which way is better."""

    name: str
    column: str
    fraction: bool
    higher_is_better: bool

    @property
    def unit(self) -> str:
        return " (pp)" if self.fraction else ""

    def change_text(self, x: float) -> str:
        """``+1.23`` (percentage points for a fraction), ``-0.5``; ``-`` when missing."""
        if x is None or math.isnan(x):
            return "-"
        if self.fraction:
            return f"{100 * x:+.2f}"
        text = num(x)
        return text if text.startswith("-") else f"+{text}"

    def harm(self, change: float) -> float:
        """How much worse (larger is more fragile); missing values rank last."""
        if change is None or math.isnan(change):
            return -math.inf
        return -change if self.higher_is_better else change


def is_per_layer(summary: pd.DataFrame) -> bool:
    """Whether a summary is a per-layer sweep's (rows with a non-empty ``layer``)."""
    return LAYER in summary.columns and bool((summary[LAYER].fillna("") != "").any())


def clean_value(summary: pd.DataFrame, metric: RankMetric) -> float:
    clean = summary[summary["distortion"] == "none"]
    return float(clean[f"{metric.column}_mean"].iloc[0]) if len(clean) else math.nan


def rank_layers(summary: pd.DataFrame, metric: RankMetric) -> dict:
    """The ``ranking`` block of a per-layer result: the metric, the clean value, per point the units ranked
    (``rank``, ``layer``, ``mean``, ``ci_low``, ``ci_high``, ``change``), and per spec the order over all its
    strengths (``overall``: ``rank``, ``layer``, ``mean_change``)."""
    clean = clean_value(summary, metric)
    per = summary[(summary[LAYER].fillna("") != "") & (summary["distortion"] != "none")]
    points, overall = [], []
    for spec, g in per.groupby("spec", sort=False):
        for strength, at in _by_strength(g):
            layers = [_entry(r, metric, clean) for _, r in at.iterrows()]
            points.append({"spec": spec, "strength_name": _text(at["strength_name"].iloc[0]),
                           "strength": strength, "layers": ranked(layers, [metric.harm(e["change"]) for e in layers])})
        overall.append({"spec": spec, "layers": _overall(g, metric, clean)})
    return {"metric": metric.name, "column": metric.column, "higher_is_better": metric.higher_is_better,
            "clean": clean, "points": points, "overall": overall}


def ranked(entries: list[dict], harms: list[float]) -> list[dict]:
    """The entries, most harmful first (ties in their given order), each with its ``rank``: one more than the
    number of entries strictly more harmful (tied entries share a rank: 1, 2, 2, 4). Harms equal to 12
    significant digits are ties: means of the same trial values summed in another order differ in the last bit."""
    harms = [h if math.isinf(h) else float(f"{h:.12g}") for h in harms]
    order = sorted(range(len(entries)), key=lambda i: -harms[i])
    return [{"rank": 1 + sum(h > harms[i] for h in harms), **entries[i]} for i in order]


def _text(x: object) -> str:
    """A text cell that may have been read back as NaN or None: empty then."""
    return "" if x is None or (isinstance(x, float) and math.isnan(x)) else str(x)


def _by_strength(g: pd.DataFrame) -> Iterator[tuple[float, pd.DataFrame]]:
    keys = g["strength"].map(lambda s: "nan" if math.isnan(s) else repr(float(s)))
    for key in dict.fromkeys(keys):
        at = g[keys == key]
        yield float(at["strength"].iloc[0]), at


def _entry(r: pd.Series, metric: RankMetric, clean: float) -> dict:
    col = metric.column
    mean = float(r[f"{col}_mean"])
    return {"layer": r[LAYER], "mean": mean, "ci_low": float(r.get(f"{col}_ci_low", math.nan)),
            "ci_high": float(r.get(f"{col}_ci_high", math.nan)), "change": mean - clean}


def _overall(g: pd.DataFrame, metric: RankMetric, clean: float) -> list[dict]:
    means = (g[f"{metric.column}_mean"].astype(float) - clean).groupby(g[LAYER], sort=False).mean()
    entries = [{"layer": layer, "mean_change": float(change)} for layer, change in means.items()]
    return ranked(entries, [metric.harm(e["mean_change"]) for e in entries])


# ------------------------------------------------------------------ rendering

def ranking_title(spec: str, metric: RankMetric) -> str:
    return f"{spec}: change in {metric.name}{metric.unit} over the clean model, most fragile first"


def ranking_lines(ranking: dict, metric: RankMetric, top: int = TERMINAL_TOP) -> Iterator[tuple[str, str, list]]:
    """``(spec, strength name, rows)`` per spec for the terminal; a row is ``[strength, ranking text]``."""
    specs: dict[str, tuple[str, list]] = {}
    for p in ranking["points"]:
        name, rows = specs.setdefault(p["spec"], (p["strength_name"] or "strength", []))
        rows.append([strength_text(p["strength"]), _ranked_text(p["layers"], metric, top)])
    for spec, (name, rows) in specs.items():
        yield spec, name, rows


def _ranked_text(layers: list[dict], metric: RankMetric, top: int) -> str:
    changes = {metric.change_text(e["change"]) for e in layers}
    if len(changes) == 1 and len(layers) > 1:
        return f"all {len(layers)} layers {changes.pop()}"
    shown = ", ".join(f"{e['layer']} {metric.change_text(e['change'])}" for e in layers[:top])
    return shown + (f", … {len(layers) - top} more" if len(layers) > top else "")


def ranking_markdown(ranking: dict, metric: RankMetric) -> str:
    """Per spec, a table of units (most fragile over all strengths first) x strengths: the change and, in
    parentheses, the rank at that strength."""
    lines = []
    for block in ranking["overall"]:
        spec = block["spec"]
        points = [p for p in ranking["points"] if p["spec"] == spec]
        name = points[0]["strength_name"] or "strength"
        cells = {(e["layer"], i): f"{metric.change_text(e['change'])} ({e['rank']})"
                 for i, p in enumerate(points) for e in p["layers"]}
        head = ["layer", *(f"{name}={strength_text(p['strength'])}" if name != "strength" else
                           strength_text(p["strength"]) for p in points)]
        lines += [f"## {ranking_title(spec, metric)}\n", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join([e["layer"], *(cells.get((e["layer"], i), "-") for i in range(len(points)))])
                  + " |" for e in block["layers"]]
        lines.append("")
    if lines:
        lines.append("Rows: the layers most fragile over all strengths first (mean change); in parentheses the "
                     "rank at that strength (1 = most fragile).\n")
    return "\n".join(lines)
