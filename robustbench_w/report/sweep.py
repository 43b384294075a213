"""The sweep report: the summary as rich tables on the terminal and as Markdown (the ``--target`` lines are
:mod:`.lowest_bits`).

The table shows the metrics the run's ``meta`` names in ``report_metrics`` (a classifier: error with its
95% interval and agreement; a language model: perplexity with its interval; ...), each in its own units:
fractions (error, agreement, accuracy, ...) in percent, everything else as a number. Without labels a
classifier's error columns give way to the agreement's interval.

On the terminal each table has a small bar per strength beside the first metric (:mod:`.bars`), on one scale
per table from the best value (the clean model's, usually) to the worst row, growing as the metric gets worse,
so that the curve's shape shows without a plot; the bars narrow, then go, where the console is too narrow. A per-layer sweep's report is its ranking
instead (:mod:`.ranking`): per distortion and strength, the layers whose distortion changes the metric most.

The header names the device with the precision of the passes (``cpu, fp32``; ``cuda:0, bf16,
channels-last, compiled``) and, for adaptive trials, the rule (``trials auto: 95% CI ±2 pp, 3 to 30``; ``1 trial
per point`` where no point drew at random). A point
that an adaptive run stopped at its cap with a wider interval has its trial count marked ``*`` and a note
under the tables.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import pandas as pd
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..engine.passes.metrics import get_metric
from ..engine.weights.coverage import coverage_parts
from ..errors import WrobustError
from .bars import bars, ends
from .ranking import RankMetric, is_per_layer, rank_layers, ranking_lines, ranking_markdown, ranking_title
from .text import ci_text, num, pack, pct, strength_text

CLASSIFIER_SHOWN = ("error", "agreement")
NO_INTERVAL = ("agreement",)  # shown without its interval (as the report always did)
FRACTION = (0.0, 1.0)
BAR_WIDTH = 10  # cells per bar where the console has room
MIN_BAR = 4  # narrower than this, the bars are left out


def shown_metrics(meta: dict | None, labelled: bool = True) -> list[tuple[str, str, tuple[float, float]]]:
    """``(name, column, bounds)`` of the metrics the table shows (a classifier's when ``meta`` names none;
    without labels, a classifier's error is left out)."""
    meta = meta or {}
    known = {m["name"]: m for m in meta.get("metrics", []) if isinstance(m, dict) and "name" in m}
    names = list(meta.get("report_metrics") or CLASSIFIER_SHOWN)
    if not labelled and names == list(CLASSIFIER_SHOWN):
        names = ["agreement"]
    out = []
    for name in names:
        m = known.get(name, {})
        bounds = tuple(m.get("bounds") or (FRACTION if name in CLASSIFIER_SHOWN else (-math.inf, math.inf)))
        out.append((name, m.get("column", name.replace("-", "_")), bounds))
    return out


def is_fraction(bounds: tuple[float, float]) -> bool:
    return tuple(bounds) == FRACTION


def value_text(x: float, bounds: tuple[float, float]) -> str:
    return pct(x) if is_fraction(bounds) else num(x)


def interval_shown(name: str, shown: list) -> bool:
    """Every metric's interval is shown, except the agreement's beside the error (as the report always did)."""
    return name not in NO_INTERVAL or "error" not in [m[0] for m in shown]


def metric_headers(meta: dict | None, labelled: bool = True) -> list[str]:
    heads, shown = [], shown_metrics(meta, labelled)
    for name, _, bounds in shown:
        label = {"agreement": "agree"}.get(name, name)
        heads.append(f"{label} %" if is_fraction(bounds) else label)
        heads += ["95% CI"] if interval_shown(name, shown) else []
    return heads


def metric_cells(r: pd.Series, meta: dict | None, labelled: bool = True) -> list[str]:
    cells, shown = [], shown_metrics(meta, labelled)
    for name, col, bounds in shown:
        cells.append(value_text(r.get(f"{col}_mean", math.nan), bounds))
        if interval_shown(name, shown):
            low, high = r.get(f"{col}_ci_low", math.nan), r.get(f"{col}_ci_high", math.nan)
            cells.append(ci_text(low, high) if is_fraction(bounds) else ci_text(low, high, num))
    return cells


def summary_tables(summary: pd.DataFrame, meta: dict | None = None) -> Iterator[tuple[str, str, list[list[str]]]]:
    """``(spec, strength name, table rows)`` per distortion spec, clean model excluded."""
    labelled = has_labels(summary)
    for spec, g in summary[summary["distortion"] != "none"].groupby("spec", sort=False):
        body = [[strength_text(r.strength), *metric_cells(r, meta, labelled), f"{r.weight_change_mean:.3f}",
                 trials_text(r)] + ([_bits(r)] if "eff_bits" in summary.columns else []) for _, r in g.iterrows()]
        yield spec, g["strength_name"].iloc[0] or "strength", body


def trials_text(r: pd.Series) -> str:
    """The number of trials, marked ``*`` where an adaptive run stopped at its cap."""
    return f"{r.trials}*" if bool(r.get("capped", False)) else str(r.trials)


def capped_note(summary: pd.DataFrame, meta: dict | None) -> str | None:
    """The note under the tables when some point was capped (None when none was)."""
    if "capped" not in summary.columns or not summary["capped"].fillna(False).astype(bool).any():
        return None
    rule = (meta or {}).get("trials") or {}
    return (f"* capped: {rule.get('max_trials', '?')} trials (--max-trials) left the 95% interval wider than "
            f"{width_text(rule)}; raise --max-trials or --ci-width")


def width_text(rule: dict) -> str:
    """``±2 pp`` (the judged metrics are fractions), ``±2`` (a metric's own unit)."""
    judged = rule.get("judged") or []
    width = float(rule.get("ci_width", math.nan))
    unit = " pp" if judged and all(float(j["threshold"]) < width for j in judged) else ""
    return f"±{width:g}{unit}"


def has_labels(summary: pd.DataFrame) -> bool:
    return "error_mean" in summary and bool(summary["error_mean"].notna().any())


def _bits(r) -> str:
    v = r.get("eff_bits", math.nan)
    return "-" if v is None or math.isnan(v) else f"{v:.3f}"


def headers(strength_name: str, with_bits: bool, meta: dict | None = None, labelled: bool = True) -> list[str]:
    return [strength_name, *metric_headers(meta, labelled), "Δw", "trials"] + (["bits/w"] if with_bits else [])


def clean_text(clean: pd.Series, meta: dict | None) -> str:
    """``clean error 5.00%`` for a classifier, ``clean perplexity 23.4`` for a language model, ..."""
    shown = [m for m in shown_metrics(meta) if m[0] not in NO_INTERVAL] or shown_metrics(meta)[:1]
    parts = []
    for name, col, bounds in shown:
        x = clean.get(f"{col}_mean", math.nan)
        if name == "error" and math.isnan(x):
            parts.append("clean error n/a (no labels: agreement only)")
        else:
            parts.append(f"clean {name} {value_text(x, bounds)}{'%' if is_fraction(bounds) else ''}")
    return ", ".join(parts)


def header_parts(summary: pd.DataFrame, meta: dict, width: int | None = None) -> list[str]:
    """The pieces of the report's header: model and data, the clean value of the shown metrics, the
    normalisation in use and where it came from (two pieces when one would not fit ``width``), what was
    distorted, the seed and the device."""
    clean = clean_text(summary[summary["distortion"] == "none"].iloc[0], meta)
    where = f"{meta.get('model')} on {meta.get('dataset')} ({meta.get('split', 'test')}, n={meta.get('n')})"
    parts = _fitting([f"{where}: {clean}"], [where, clean], width)
    if meta.get("normalization_text"):
        norm, source = f"normalisation {meta['normalization_text']}", meta.get("normalization_source")
        parts += _fitting([f"{norm} (from {source})"], [norm, f"normalisation from {source}"], width)
    distorted = distorted_parts(meta)
    parts += _fitting(["; ".join(distorted)], distorted, width)
    return parts + [*hardware_text(meta), f"seed {meta.get('seed')}", device_text(meta),
                    *trials_rule_text(meta, summary)]


def hardware_text(meta: dict) -> list[str]:
    """``redraw per batch`` and ``converters dac 8 bits, adc 8 bits (static ranges; the clean row is the
    converter baseline)`` where the sweep had them (docs/hardware.md); nothing otherwise."""
    parts = ["redraw per batch"] if meta.get("redraw") == "batch" else []
    conv = meta.get("converters")
    if conv:
        what = [f"{k} {conv[k]} bits" for k in ("dac", "adc") if conv.get(k) is not None]
        what += [f"out-noise {conv['out_noise']:g}"] if conv.get("out_noise") else []
        whose = "the clean row is the converter baseline" if conv.get("apply") == "all" else "distorted points only"
        parts.append(f"converters {', '.join(what)} ({conv.get('range')} ranges; {whose})")
    return parts


def distorted_parts(meta: dict) -> list[str]:
    """The coverage (``distorted 21 tensors, 11,172,032 of 11,181,642 parameters (99.91%)``, ``clean: 9,610
    biases``: ``engine.weights.coverage``); for a per-layer sweep led by ``3 layers, one at a time``. A file
    written before the coverage was recorded: ``21 tensors, 11,172,032 weights distorted``."""
    per_layer = meta.get("per_layer") or meta.get("units")
    if isinstance(meta.get("coverage"), dict):
        parts = coverage_parts(meta["coverage"])
        return [f"{len(meta.get('units', []))} layers, one at a time", *parts] if per_layer else parts
    tensors, weights = len(meta.get("targets", [])), meta.get("target_weights")
    count = f"{tensors} tensors" + ("" if weights is None else f", {weights:,} weights")  # an older file: none
    return [f"{len(meta.get('units', []))} layers ({count}), distorted one at a time" if per_layer
            else f"{count} distorted"]


def device_text(meta: dict) -> str:
    """``cpu``; with the passes' settings where the meta records them: ``cuda:0, bf16, channels-last``."""
    parts = [str(meta.get("device"))]
    if meta.get("precision"):
        effective = meta.get("precision_effective", meta["precision"])
        parts.append(meta["precision"] if effective == meta["precision"] else f"{meta['precision']} (as {effective})")
    parts += ["channels-last"] if meta.get("channels_last") else []
    parts += ["compiled"] if meta.get("compile") else []
    return ", ".join(parts)


def trials_rule_text(meta: dict, summary: pd.DataFrame | None = None) -> list[str]:
    """``trials auto: 95% CI ±2 pp, 3 to 30`` for an adaptive run whose points include a random one; ``1 trial
    per point (no point draws at random)`` where every point ran once; nothing for fixed trials."""
    rule = meta.get("trials")
    if not isinstance(rule, dict) or rule.get("mode") != "auto":
        return []
    if summary is not None and "trials" in summary:
        points = summary[summary["distortion"] != "none"]["trials"]
        if len(points) and (points == 1).all():
            return ["1 trial per point (no point draws at random)"]
    return [f"trials auto: 95% CI {width_text(rule)}, {rule.get('min_trials', 3)} to {rule['max_trials']}"]


def _fitting(whole: list[str], split: list[str], width: int | None) -> list[str]:
    """``whole`` when its piece fits ``width`` (or there is no width), else the same in two pieces."""
    return whole if width is None or len(whole[0]) <= width else split


def clean_line(summary: pd.DataFrame, meta: dict) -> str:
    return "; ".join(header_parts(summary, meta))


def render_sweep(summary: pd.DataFrame, meta: dict, console: Console) -> None:
    """The header, packed into lines of the console's width, then one table per distortion spec (with bars),
    or for a per-layer sweep its ranking."""
    for line in pack(header_parts(summary, meta, console.width), console.width):
        console.print(line, markup=False, highlight=False)
    if is_per_layer(summary):
        render_ranking(summary, meta, console)
    else:
        render_tables(summary, meta, console)
    note = capped_note(summary, meta)
    if note:
        console.print(note, markup=False, highlight=False)


def render_tables(summary: pd.DataFrame, meta: dict, console: Console) -> None:
    """One table per distortion spec, with a bar column where the console has room."""
    with_bits, labelled = "eff_bits" in summary.columns, has_labels(summary)
    curves = bar_values(summary, meta, labelled)
    for spec, strength_name, body in summary_tables(summary, meta):
        heads = headers(strength_name, with_bits, meta, labelled)
        plain = sweep_table(spec, heads, body)
        room = console.width - console.measure(plain).maximum - 3
        width = min(BAR_WIDTH, room)
        if width < MIN_BAR or spec not in curves:
            console.print(plain)
            continue
        name, values, clean, bounds, higher = curves[spec]
        best, worst = ends(values, clean, higher)
        title = f"{spec}   (bars: {name} from {bar_end(best, bounds)} to {bar_end(worst, bounds)})"
        cells = bars(values, clean, width, higher)
        at = bar_position(meta, labelled)
        console.print(sweep_table(title, heads[:at] + [""] + heads[at:],
                                  [r[:at] + [b] + r[at:] for r, b in zip(body, cells)], at))


def sweep_table(title: str, heads: list[str], body: list[list[str]], bar_at: int | None = None) -> Table:
    table = Table(title=escape(title), title_justify="left", show_edge=False, pad_edge=False)
    for i, h in enumerate(heads):
        table.add_column(h, justify="left" if i in (0, bar_at) else "right", no_wrap=i == bar_at)
    for row in body:
        table.add_row(*map(escape, row))
    return table


def bar_values(summary: pd.DataFrame, meta: dict | None, labelled: bool) -> dict[str, tuple]:
    """Per spec, what its bars show: the first shown metric's name, its means in table order, the clean
    value, the metric's bounds and whether higher is better."""
    name, col, bounds = shown_metrics(meta, labelled)[0]
    if f"{col}_mean" not in summary.columns:
        return {}
    clean = summary.loc[summary["distortion"] == "none", f"{col}_mean"]
    clean_value = float(clean.iloc[0]) if len(clean) else math.nan
    higher = higher_is_better(name, meta)
    return {spec: (name, [float(v) for v in g[f"{col}_mean"]], clean_value, bounds, higher)
            for spec, g in summary[summary["distortion"] != "none"].groupby("spec", sort=False)}


def bar_position(meta: dict | None, labelled: bool) -> int:
    """The column the bars go in: after the first metric (and its interval)."""
    shown = shown_metrics(meta, labelled)
    return 2 + (1 if interval_shown(shown[0][0], shown) else 0)


def bar_end(x: float, bounds: tuple[float, float]) -> str:
    if math.isnan(x):
        return "-"
    return f"{100 * x:.3g}%" if is_fraction(bounds) else num(x)


def rank_metric(summary: pd.DataFrame, meta: dict | None) -> RankMetric:
    """The metric a per-layer sweep is ranked on: the first the report shows (error; agreement without labels;
    perplexity for a language model; ...)."""
    name, col, bounds = shown_metrics(meta, has_labels(summary))[0]
    return RankMetric(name, col, is_fraction(bounds), higher_is_better(name, meta))


def higher_is_better(name: str, meta: dict | None) -> bool:
    """Which way a metric runs: as the run's meta says, else as the registry says (lower for an unknown one)."""
    listed = {m.get("name"): m for m in (meta or {}).get("metrics", []) if isinstance(m, dict)}
    if "higher_is_better" in listed.get(name, {}):
        return bool(listed[name]["higher_is_better"])
    try:
        return get_metric(name).info.higher_is_better
    except WrobustError:  # a custom metric of another session
        return False


def layer_ranking(summary: pd.DataFrame, meta: dict | None) -> dict | None:
    """The ``ranking`` block of a per-layer sweep's ``.json`` (None for a whole-model sweep)."""
    return rank_layers(summary, rank_metric(summary, meta)) if is_per_layer(summary) else None


def render_ranking(summary: pd.DataFrame, meta: dict, console: Console) -> None:
    """Per distortion spec, one row per strength naming the most fragile layers first, with their changes."""
    metric = rank_metric(summary, meta)
    for spec, strength_name, rows in ranking_lines(rank_layers(summary, metric), metric):
        console.print(ranking_title(spec, metric), markup=False, highlight=False)
        table = Table(show_edge=False, pad_edge=False)
        table.add_column(strength_name, justify="left", no_wrap=True)
        table.add_column("layers, most fragile first", justify="left")
        for row in rows:
            table.add_row(*map(escape, row))
        console.print(table)


def summary_markdown(summary: pd.DataFrame, meta: dict | None = None) -> str:
    lines = [f"# wrobust sweep\n\n{clean_line(summary, meta)}\n"] if meta else ["# wrobust sweep\n"]
    lines += [f"**Warning:** {w}\n" for w in (meta or {}).get("warnings", [])]
    if is_per_layer(summary):
        metric = rank_metric(summary, meta)
        return "\n".join(lines + [ranking_markdown(rank_layers(summary, metric), metric)])
    with_bits, labelled = "eff_bits" in summary.columns, has_labels(summary)
    for spec, strength_name, body in summary_tables(summary, meta):
        head = headers(strength_name, with_bits, meta, labelled)
        lines += [f"## {spec}\n", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(r) + " |" for r in body]
        lines.append("")
    note = capped_note(summary, meta)
    lines += [note.replace("*", "\\*", 1), ""] if note else []
    return "\n".join(lines)
