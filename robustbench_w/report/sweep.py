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
from .text import ci_text, pct, strength_text


def summary_tables(summary: pd.DataFrame) -> Iterator[tuple[str, str, list[list[str]]]]:
    """``(spec, strength name, table rows)`` per distortion spec, clean model excluded."""
    for spec, g in summary[summary["distortion"] != "none"].groupby("spec", sort=False):
        body = [[strength_text(r.strength), pct(r.error_mean), ci_text(r.error_ci_low, r.error_ci_high),
                 pct(r.agreement_mean), f"{r.weight_change_mean:.3f}", str(r.trials)]
                + ([_bits(r)] if "eff_bits" in summary.columns else []) for r in g.itertuples()]
        yield spec, g["strength_name"].iloc[0] or "strength", body


def _bits(r) -> str:
    v = getattr(r, "eff_bits", math.nan)
    return "-" if v is None or math.isnan(v) else f"{v:.3f}"


def headers(strength_name: str, with_bits: bool) -> list[str]:
    return [strength_name, "error %", "95% CI", "agree %", "Δw", "trials"] + (["bits/w"] if with_bits else [])


def clean_line(summary: pd.DataFrame, meta: dict) -> str:
    clean = summary[summary["distortion"] == "none"].iloc[0]
    err = "n/a (no labels)" if math.isnan(clean.error_mean) else f"{pct(clean.error_mean)}%"
    return (f"{meta.get('model')} on {meta.get('dataset')} ({meta.get('split', 'test')}, n={meta.get('n')}): "
            f"clean error {err}; {len(meta.get('targets', []))} tensors, {meta.get('target_weights', 0):,} weights "
            f"distorted; seed {meta.get('seed')}; {meta.get('device')}")


def render_sweep(summary: pd.DataFrame, meta: dict, console: Console) -> None:
    console.print(clean_line(summary, meta), markup=False, highlight=False)
    with_bits = "eff_bits" in summary.columns
    for spec, strength_name, body in summary_tables(summary):
        table = Table(title=escape(spec), title_justify="left", show_edge=False, pad_edge=False)
        for i, h in enumerate(headers(strength_name, with_bits)):
            table.add_column(h, justify="left" if i == 0 else "right")
        for row in body:
            table.add_row(*map(escape, row))
        console.print(table)


def summary_markdown(summary: pd.DataFrame, meta: dict | None = None) -> str:
    lines = [f"# wrobust sweep\n\n{clean_line(summary, meta)}\n"] if meta else ["# wrobust sweep\n"]
    with_bits = "eff_bits" in summary.columns
    for spec, strength_name, body in summary_tables(summary):
        head = headers(strength_name, with_bits)
        lines += [f"## {spec}\n", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(r) + " |" for r in body]
        lines.append("")
    return "\n".join(lines)


def lowest_bits_lines(table: pd.DataFrame, max_error: float) -> list[str]:
    """The ``--target-error`` report: per discrete distortion, the lowest-bits point meeting the error."""
    head = f"lowest bits meeting error <= {pct(max_error)}%:"
    if table.empty:
        discrete = ", ".join(i.name for i in list_distortions() if i.discrete)
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
