"""Rendering of the reproduce grid (:mod:`robustbench_w.reproduce`): the rule x distortion table, the
statements it supports, Markdown, the terminal table and the files of ``wrobust reproduce -o DIR``.

A statement compares one rule's error with rule ``none``'s under the same distortion at the same strength:
the difference counts when it exceeds ``sqrt(Z^2 p1(1-p1)/n + Z^2 p2(1-p2)/n + h1^2 + h2^2)`` with
``Z = 1.96``: the binomial error of the test set (taken as independent for the two models, which is
conservative since both see the same images) and ``h``, the half-width of the 95% interval over the trials
of a random distortion (Student t, as in the table).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..distortions import get_distortion
from ..errors import InputFileError
from ..report.files import atomic_write
from ..report.text import pct
from .reproduce import GridResult, representative
from .train import RULE_CLIP, RULE_NONE

Z = 1.96
CLAIM_DISTORTIONS = ("sign", "round", "addnorm")  # the paper's headline test-time distortions


def columns(summary: pd.DataFrame) -> list[tuple[str, str, float]]:
    """``(label, spec, strength)`` of each table column: the clean model, then each distortion at its
    representative strength (the middle of its grid)."""
    cols = [("clean", "none", math.nan)]
    for spec, g in summary[summary["distortion"] != "none"].groupby("spec", sort=False):
        info = get_distortion(spec).info
        if info.parameterless:
            cols.append((spec, spec, math.nan))
            continue
        s = representative(list(dict.fromkeys(g["strength"])), info.identity)
        cols.append((f"{spec} {info.strength}={s:g}", spec, s))
    return cols


def cell(summary: pd.DataFrame, rule: str, spec: str, strength: float) -> pd.Series | None:
    sel = (summary["rule"] == rule) & (summary["spec"] == spec)
    sel &= summary["strength"].isna() if math.isnan(strength) else summary["strength"] == strength
    found = summary[sel]
    return None if found.empty else found.iloc[0]


def error_text(row: pd.Series | None) -> str:
    """``mean`` in %, with the 95% interval over trials where the point is random and the trials differ."""
    if row is None:
        return "-"
    low, high = row.error_ci_low, row.error_ci_high
    if math.isnan(low) or math.isnan(high) or low == high:
        return pct(row.error_mean, 1)
    return f"{pct(row.error_mean, 1)} [{pct(low, 1)}, {pct(high, 1)}]"


def round_bits(result: GridResult, rule: str) -> float:
    """Effective bits per weight of ``round`` for one rule: the sweep's ``eff_bits`` column."""
    row = cell(result.summary, rule, "round", math.nan)
    if row is None or "eff_bits" not in row.index:
        return math.nan
    return float(row["eff_bits"])


def grid_table(result: GridResult) -> tuple[list[str], list[list[str]]]:
    """Headers and rows: one row per rule, one column per distortion, then ``round`` bits per weight."""
    cols = columns(result.summary)
    heads = ["rule", *(f"{label} err %" for label, _, _ in cols), "round bits/w"]
    body = []
    for rule in result.meta["rules"]:
        cells = [error_text(cell(result.summary, rule, spec, s)) for _, spec, s in cols]
        bits = round_bits(result, rule)
        body.append([rule, *cells, "-" if math.isnan(bits) else f"{bits:.3f}"])
    return heads, body


# ------------------------------------------------------------------ statements from the numbers

def compare(a: pd.Series, b: pd.Series, n: int) -> int:
    """-1: ``a`` has clearly lower error than ``b`` (on ``n`` test images); 1: clearly higher; 0: no clear
    difference. The margin is ``sqrt(sum of (Z * binomial se)^2 + sum of (trial CI half-width)^2)``."""
    diff = a.error_mean - b.error_mean
    if math.isnan(diff):
        return 0
    margin = math.sqrt(sum(_binomial(r, n) + _half_width(r) ** 2 for r in (a, b)))
    margin = max(margin, 1e-12)
    return -1 if diff < -margin else 1 if diff > margin else 0


def _binomial(r: pd.Series, n: int) -> float:
    p = r.error_mean
    return Z ** 2 * p * (1 - p) / max(n, 1)


def _half_width(r: pd.Series) -> float:
    """Half-width of the 95% interval over trials (0 for an exact point or one without an interval)."""
    low, high = r.error_ci_low, r.error_ci_high
    if math.isnan(low) or math.isnan(high):
        return 0.0
    return max(r.error_mean - low, high - r.error_mean)


def findings(result: GridResult) -> list[str]:
    """Plain statements: for each rule, is its error under sign, round and addnorm lower than rule none's?"""
    rules = result.meta["rules"]
    if RULE_NONE not in rules:
        return ["Rule `none` was not trained, so no rule can be compared with ordinary training."]
    cols = [c for c in columns(result.summary) if get_distortion(c[1]).name in CLAIM_DISTORTIONS]
    if not cols:
        return [f"None of {', '.join(CLAIM_DISTORTIONS)} was swept, so the paper's claims were not tested."]
    lines, shown = [], []
    for rule in (r for r in rules if r != RULE_NONE):
        verdict, text = rule_finding(result, rule, cols)
        lines.append(text)
        shown.append((rule, verdict))
    return [overall(result, shown, [c[0] for c in cols]), *lines, *baseline_notes(result, cols)]


def rule_finding(result: GridResult, rule: str, cols: list) -> tuple[str, str]:
    parts, signs = [], []
    for label, spec, s in cols:
        a, b = cell(result.summary, rule, spec, s), cell(result.summary, RULE_NONE, spec, s)
        if a is None or b is None:
            continue
        sign = compare(a, b, result.meta["n_test"])
        signs.append(sign)
        word = {-1: "lower", 0: "no clear difference", 1: "higher"}[sign]
        parts.append(f"{label}: {pct(a.error_mean, 1)}% vs {pct(b.error_mean, 1)}% ({word})")
    verdict = ("shows" if signs and all(x < 0 for x in signs) else
               "does not show" if not any(x < 0 for x in signs) else "shows in part")
    claim = "clipping alone gives robustness" if rule == RULE_CLIP else "training with this projection gives robustness"
    return verdict, f"- `{rule}` vs `none`: {'; '.join(parts)}. The claim that {claim} {verdict} here."


def overall(result: GridResult, shown: list[tuple[str, str]], compared: list[str]) -> str:
    dataset, under = result.meta["dataset"], ", ".join(compared)
    full = [r for r, v in shown if v == "shows"]
    part = [r for r, v in shown if v == "shows in part"]
    none = [r for r, v in shown if v == "does not show"]
    if full and not part and not none:
        return (f"On {dataset}, every rule has a clearly lower error than ordinary training (`none`) under "
                f"{under}: the paper's claims show.")
    if not full and not part:
        return (f"On {dataset}, the paper's claims do not show: no rule has a clearly lower error than ordinary "
                f"training (`none`) under {under}.")
    bits = [f"they show for {_names(full)}" if full else "", f"in part for {_names(part)}" if part else "",
            f"not for {_names(none)}" if none else ""]
    return f"On {dataset}, the paper's claims show only in part: " + ", ".join(b for b in bits if b) + "."


def _names(rules: list[str]) -> str:
    return ", ".join(f"`{r}`" for r in rules)


def baseline_notes(result: GridResult, cols: list) -> list[str]:
    """Where ordinary training is itself robust (its error under a distortion is not clearly above its clean
    error), there is nothing for another rule to improve: say so."""
    clean = cell(result.summary, RULE_NONE, "none", math.nan)
    if clean is None:
        return []
    robust = [label for label, spec, s in cols
              if (r := cell(result.summary, RULE_NONE, spec, s)) is not None and compare(r, clean, result.meta["n_test"]) <= 0]
    if not robust:
        return []
    return [f"- Rule `none` is already robust to {', '.join(robust)} on this dataset (no clear rise over its "
            f"clean error of {pct(clean.error_mean, 1)}%), so no rule can do clearly better there."]


# ------------------------------------------------------------------ Markdown, terminal, files

def header_lines(result: GridResult) -> list[str]:
    m = result.meta
    return [f"dataset `{m['dataset']}` ({m['n_test']} test images), arch `{m['arch']}`, {m['epochs']} epochs, "
            f"{m['optimizer']} lr {m['lr']:g} ({m['schedule']}), batch {m['batch_size']}, hidden weights "
            f"clipped to [-{m['clip']:g}, {m['clip']:g}] (not for `none`), init {m['init']}, seed {m['seed']}, "
            f"{m['trials']} trials per random point; {m['elapsed_s']:.0f} s in all."]


def training_lines(result: GridResult) -> list[str]:
    heads = ["rule", "final train loss", "clean test error %", "projected test error %", "train s"]
    lines = ["| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]
    for rule, rec in result.training.items():
        lines.append(f"| {rule} | {rec['loss'][-1]:.4f} | {pct(rec['test_error'], 2)} | "
                     f"{pct(rec['test_error_projected'], 2)} | {rec['train_s']:.1f} |")
    return lines


def grid_markdown(result: GridResult, figure: str | None = None) -> str:
    heads, body = grid_table(result)
    lines = ["# Training rule x test-time distortion (Merolla et al. 2016, arXiv:1606.01981)", "",
             *header_lines(result), "", "Test error in % (mean [95% CI over trials] where the distortion is random) "
             "of the model trained with each rule, under each test-time distortion at a representative strength "
             "(the middle of its grid; every strength is in `results.csv`).", "",
             "| " + " | ".join(heads) + " |", "|" + "---|" * len(heads), *("| " + " | ".join(r) + " |" for r in body),
             "", "## What the grid shows", "", *findings(result), "",
             "(A difference counts when it exceeds the 95% margins of both errors combined: the binomial error of "
             "the test set and the interval over trials; nothing is tuned per rule: same architecture, initialisation, optimiser, epochs and seed.)", "",
             "## Training", "", *training_lines(result), "",
             "`projected test error`: the test error with the training projection applied (one draw for a random rule); "
             "the checkpoints hold the hidden weights, which every other column evaluates.", ""]
    if figure:
        lines += [f"![error vs strength per rule]({figure})", ""]
    return "\n".join(lines)


def render_grid(result: GridResult, console: Console) -> None:
    heads, body = grid_table(result)
    table = Table(title=escape(f"test error % by training rule ({result.meta['dataset']})"), title_justify="left",
                  show_edge=False, pad_edge=False)
    for i, h in enumerate(heads):
        table.add_column(escape(h), justify="left" if i == 0 else "right")
    for row in body:
        table.add_row(*map(escape, row))
    console.print(table)
    for line in findings(result):
        console.print(line, markup=False, highlight=False)


@contextmanager
def output_dirs(dirs: Sequence[Path]) -> Iterator[list[Path]]:
    """Make the output folders before any work; when the work fails, remove again those this run made, if
    nothing but an empty ``models/`` is in them (a folder the user had, or one holding results, stays)."""
    made = [Path(d) for d in dirs if not Path(d).exists()]
    ready = [prepare_dir(d) for d in dirs]
    try:
        yield ready
    except BaseException:
        for folder in made:
            for empty in (folder / "models", folder):
                if empty.is_dir() and not any(empty.iterdir()):
                    empty.rmdir()
        raise


def copy_models(dirs: Sequence[Path]) -> None:
    """With ``-o`` repeated, the checkpoints were written to the first folder: copy them into the others."""
    for folder in dirs[1:]:
        (folder / "models").mkdir(exist_ok=True)
        for source in sorted((Path(dirs[0]) / "models").glob("*.pt")):
            data = source.read_bytes()
            atomic_write(folder / "models" / source.name, lambda p, data=data: p.write_bytes(data))


def prepare_dir(out_dir: Path) -> Path:
    """Create the output folder (before any work is done); a file in its place is an input error."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise InputFileError(f"{out_dir}: exists and is not a directory")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputFileError(f"{out_dir}: cannot create the folder: {exc.strerror or exc}") from exc
    return out_dir


def write_grid(result: GridResult, out_dir: Path) -> list[Path]:
    """``results.csv`` (every row, with ``rule``), ``summary.csv``, ``figure.png`` (with matplotlib) and
    ``report.md`` in ``out_dir``."""
    out_dir = prepare_dir(out_dir)
    written = [atomic_write(out_dir / "results.csv", lambda p: result.rows.to_csv(p, index=False)),
               atomic_write(out_dir / "summary.csv", lambda p: result.summary.to_csv(p, index=False))]
    from .figure import plot_grid

    figure = plot_grid(result.summary, out_dir / "figure.png")
    if figure is not None:
        written.append(figure)
    text = grid_markdown(result, figure.name if figure is not None else None)
    written.append(atomic_write(out_dir / "report.md", lambda p: p.write_text(text)))
    return written
