"""The sweep report: the summary as rich tables on the terminal and as Markdown, and the ``--target-error``
lines (the lowest-bits point per discrete distortion)."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pandas as pd
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..distortions import list_distortions
from .text import ci_text, pack, pct, strength_text


def summary_tables(summary: pd.DataFrame) -> Iterator[tuple[str, str, list[list[str]]]]:
    """``(spec, strength name, table rows)`` per distortion spec, clean model excluded. Without labels the
    error columns give way to the agreement's interval."""
    labelled = has_labels(summary)
    for spec, g in summary[summary["distortion"] != "none"].groupby("spec", sort=False):
        body = [[strength_text(r.strength)]
                + ([pct(r.error_mean), ci_text(r.error_ci_low, r.error_ci_high), pct(r.agreement_mean)] if labelled
                   else [pct(r.agreement_mean), ci_text(r.agreement_ci_low, r.agreement_ci_high)])
                + [f"{r.weight_change_mean:.3f}", str(r.trials)]
                + ([_bits(r)] if "eff_bits" in summary.columns else []) for r in g.itertuples()]
        yield spec, g["strength_name"].iloc[0] or "strength", body


def has_labels(summary: pd.DataFrame) -> bool:
    return bool(summary["error_mean"].notna().any())


def _bits(r) -> str:
    v = getattr(r, "eff_bits", math.nan)
    return "-" if v is None or math.isnan(v) else f"{v:.3f}"


def headers(strength_name: str, with_bits: bool, labelled: bool = True) -> list[str]:
    middle = ["error %", "95% CI", "agree %"] if labelled else ["agree %", "95% CI"]
    return [strength_name, *middle, "Δw", "trials"] + (["bits/w"] if with_bits else [])


def header_parts(summary: pd.DataFrame, meta: dict, width: int | None = None) -> list[str]:
    """The pieces of the report's header: model and data, the clean error, the normalisation in use and where it
    came from (two pieces when one would not fit ``width``), what was distorted, the seed and the device."""
    clean = summary[summary["distortion"] == "none"].iloc[0]
    err = "n/a (no labels: agreement only)" if math.isnan(clean.error_mean) else f"{pct(clean.error_mean)}%"
    where = f"{meta.get('model')} on {meta.get('dataset')} ({meta.get('split', 'test')}, n={meta.get('n')})"
    parts = _fitting([f"{where}: clean error {err}"], [where, f"clean error {err}"], width)
    if meta.get("normalization_text"):
        norm, source = f"normalisation {meta['normalization_text']}", meta.get("normalization_source")
        parts += _fitting([f"{norm} (from {source})"], [norm, f"normalisation from {source}"], width)
    return parts + [f"{len(meta.get('targets', []))} tensors, {meta.get('target_weights', 0):,} weights distorted",
                    f"seed {meta.get('seed')}", str(meta.get("device"))]


def _fitting(whole: list[str], split: list[str], width: int | None) -> list[str]:
    """``whole`` when its piece fits ``width`` (or there is no width), else the same in two pieces."""
    return whole if width is None or len(whole[0]) <= width else split


def clean_line(summary: pd.DataFrame, meta: dict) -> str:
    return "; ".join(header_parts(summary, meta))


def render_sweep(summary: pd.DataFrame, meta: dict, console: Console) -> None:
    """The header, packed into lines of the console's width, then one table per distortion spec."""
    for line in pack(header_parts(summary, meta, console.width), console.width):
        console.print(line, markup=False, highlight=False)
    with_bits, labelled = "eff_bits" in summary.columns, has_labels(summary)
    for spec, strength_name, body in summary_tables(summary):
        table = Table(title=escape(spec), title_justify="left", show_edge=False, pad_edge=False)
        for i, h in enumerate(headers(strength_name, with_bits, labelled)):
            table.add_column(h, justify="left" if i == 0 else "right")
        for row in body:
            table.add_row(*map(escape, row))
        console.print(table)


def summary_markdown(summary: pd.DataFrame, meta: dict | None = None) -> str:
    lines = [f"# wrobust sweep\n\n{clean_line(summary, meta)}\n"] if meta else ["# wrobust sweep\n"]
    lines += [f"**Warning:** {w}\n" for w in (meta or {}).get("warnings", [])]
    with_bits, labelled = "eff_bits" in summary.columns, has_labels(summary)
    for spec, strength_name, body in summary_tables(summary):
        head = headers(strength_name, with_bits, labelled)
        lines += [f"## {spec}\n", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(r) + " |" for r in body]
        lines.append("")
    return "\n".join(lines)


def lowest_bits_lines(table: pd.DataFrame, max_error: float) -> list[str]:
    """The ``--target-error`` report: per discrete distortion, the lowest-bits point meeting the error."""
    head = f"lowest bits meeting error <= {pct(max_error)}%:"
    if table.empty:
        discrete = ", ".join(i.name + ("" if i.discrete else " (at some strengths)")
                             for i in list_distortions() if i.discrete or i.discrete_when)
        return [f"{head} no discrete distortion was swept (effective bits are defined for {discrete})"]
    lines = [head]
    for r in table.itertuples():
        point = "" if math.isnan(r.strength) else f" at {r.strength_name}={r.strength:g}"
        if r.met:
            lines.append(f"  {r.spec}{point}: {r.eff_bits:.3f} bits/w, error {pct(r.error_mean)}%")
        else:
            best = "no labels" if math.isnan(r.error_mean) else f"lowest error {pct(r.error_mean)}%{point}, {r.eff_bits:.3f} bits/w"
            lines.append(f"  {r.spec}: no point meets it ({best})")
    return lines


def lowest_bits_markdown(table: pd.DataFrame, max_error: float) -> str:
    head, *points = lowest_bits_lines(table, max_error)
    return f"\n## {head.rstrip(':')}\n\n" + "".join(f"- {p.strip()}\n" for p in points) if points else f"\n{head}\n"
