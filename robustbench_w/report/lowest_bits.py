"""The ``--target`` report of a sweep: per discrete distortion, the lowest-bits point that meets a target on a
metric (``error <= 6%``, ``cosine >= 0.99``), as terminal lines, Markdown and meta; and the check, before any
work, that each target's metric is measured."""

from __future__ import annotations

import math

import pandas as pd

from ..bits.tradeoff import lowest_bits
from ..distortions import list_distortions
from ..engine.passes.metrics import get_metric
from ..errors import InvalidValueError
from .text import num, pct


def target_text(metric: str, limit: float, higher_is_better: bool, fraction: bool) -> str:
    """``error <= 6.00%``, ``perplexity <= 40``, ``cosine >= 0.99``."""
    value = f"{pct(limit)}%" if fraction else num(limit)
    return f"{metric} {'>=' if higher_is_better else '<='} {value}"


def lowest_bits_lines(table: pd.DataFrame, limit: float, metric: str = "error", higher_is_better: bool = False,
                      fraction: bool = True) -> list[str]:
    """The ``--target`` report: per discrete distortion, the lowest-bits point meeting the target."""
    head = f"lowest bits meeting {target_text(metric, limit, higher_is_better, fraction)}:"
    if table.empty:
        discrete = ", ".join(i.name + ("" if i.discrete else " (at some strengths)")
                             for i in list_distortions() if i.discrete or i.discrete_when)
        return [f"{head} no discrete distortion was swept (effective bits are defined for {discrete})"]
    mean = [c for c in table.columns if c.endswith("_mean")][0]
    show = (lambda x: f"{pct(x)}%") if fraction else num
    lines = [head]
    for r in table.to_dict(orient="records"):
        point = "" if math.isnan(r["strength"]) else f" at {r['strength_name']}={r['strength']:g}"
        if r["met"]:
            lines.append(f"  {r['spec']}{point}: {r['eff_bits']:.3f} bits/w, {metric} {show(r[mean])}")
        else:
            best = "no labels" if math.isnan(r[mean]) else \
                f"{'highest' if higher_is_better else 'lowest'} {metric} {show(r[mean])}{point}, {r['eff_bits']:.3f} bits/w"
            lines.append(f"  {r['spec']}: no point meets it ({best})")
    return lines


def lowest_bits_markdown(table: pd.DataFrame, limit: float, metric: str = "error", higher_is_better: bool = False,
                         fraction: bool = True) -> str:
    head, *points = lowest_bits_lines(table, limit, metric, higher_is_better, fraction)
    return f"\n## {head.rstrip(':')}\n\n" + "".join(f"- {p.strip()}\n" for p in points) if points else f"\n{head}\n"


def check_targets(targets: tuple, metric: tuple[str, ...]) -> None:
    """Before any work: a target on a metric that ``--metric`` leaves out cannot be met."""
    given = {get_metric(m).name for m in metric}
    for name, _ in targets:
        if given and name not in given:
            raise InvalidValueError(f"--target {name}: {name} is not measured (--metric {' --metric '.join(sorted(given))}); "
                                    f"add --metric {name}")


def target_report(summary: pd.DataFrame, meta: dict, targets: tuple) -> tuple[dict, list[str], str]:
    """The lowest-bits point per discrete distortion for each ``(metric, limit)`` target: meta, lines, Markdown."""
    lines, markdown, found = [], "", []
    for name, limit in targets:
        m = get_metric(name)
        if f"{m.column}_mean" not in summary:
            measured = ", ".join(x["name"] for x in meta.get("metrics", []))
            raise InvalidValueError(f"--target {name}: {name} was not measured (measured: {measured}); "
                                    f"add --metric {name}")
        lowest = lowest_bits(summary, limit, m.column, m.info.higher_is_better)
        shape = (m.name, m.info.higher_is_better, tuple(m.info.bounds) == (0.0, 1.0))
        lines += lowest_bits_lines(lowest, limit, *shape)
        markdown += lowest_bits_markdown(lowest, limit, *shape)
        found.append({"metric": m.name, "limit": limit, "lowest_bits": lowest.to_dict(orient="records")})
        if m.name == "error":
            meta = {**meta, "target_error": limit, "lowest_bits": lowest.to_dict(orient="records")}
    return ({**meta, "metric_targets": found} if found else meta), lines, markdown  # "targets": the tensors
