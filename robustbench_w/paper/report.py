"""The report of the reproduce grid (:mod:`.reproduce`): ``report.md``, ``claims.json``, ``results.csv``,
``summary.csv`` and ``figure.png`` in ``wrobust reproduce -o DIR``, and the terminal view (:mod:`.console`).

Every number in the report comes from the rows: cells and per-seed quantities from :mod:`.cells`, verdicts
from :mod:`.claims`; the report only formats them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from ..errors import InputFileError
from ..load.writing import check_writable
from ..report.files import atomic_write
from ..report.text import pct
from .bands import LEVEL
from .cells import Interval, cell
from .claims import Claim, claims_json
from .effects import VERDICT, amount, number
from .grid import CLEAN, Column
from .projection import RULE_NONE
from .reproduce import GridResult

INTERVAL_NOTE = (f"Intervals ({LEVEL:.0%}): each claim rests on an effect (a difference or a share) with a threshold; "
                 "its interval holds the spread over training seeds, over the trials of a random distortion and over "
                 "the test set. Per seed, an error carries a binomial test-set term (Agresti-Coull, from the number of "
                 "test images) and the variance of its trials' mean; a per-seed quantity (a loss, a spread) carries "
                 "the sum of its errors' variances (conservative: the columns share the test inputs) and its band is "
                 "value +- 1.96 sd; a rule's interval runs from the lowest to the highest end of its seeds' bands, "
                 "and across two rules the effect's interval is interval arithmetic. Shown: the whole interval beyond "
                 "the threshold; not shown: the whole interval short of it; inconclusive otherwise. Nothing is drawn at "
                 "random. The table below shows the models on this test set (its intervals: over seeds and trials only).")


def interval_text(iv: Interval, scale: float = 100, digits: int = 1) -> str:
    """``mean [low, high]`` (``mean`` alone without an interval, ``-`` without values)."""
    if math.isnan(iv.mean):
        return "-"
    mean = f"{scale * iv.mean:.{digits}f}"
    return mean if not iv.defined else f"{mean} [{scale * iv.low:.{digits}f}, {scale * iv.high:.{digits}f}]"


def cell_matrix(result: GridResult) -> tuple[list[Column], dict[str, list[Interval]]]:
    """The table's columns (clean first) and, per rule, its error interval in each."""
    columns = result.grid.columns
    return columns, {rule: [cell(result.rows, rule, c) for c in columns] for rule in result.grid.rules}


# ------------------------------------------------------------------ Markdown


def recipe_line(result: GridResult) -> str:
    m = result.meta
    seeds = ", ".join(map(str, m["seeds"]))
    return (f"Dataset `{m['dataset']}` ({m['n_test']} test images), arch `{m['arch']}`; recipe: {m['optimizer']} "
            f"lr {m['lr']:g} with a `{m['schedule']}` schedule, {counted(m['epochs'], 'epoch')}, batch "
            f"{m['batch_size']}, hidden weights initialised {m['init']}, clipped to [-{m['clip']:g}, {m['clip']:g}] "
            f"(not for `none`); the same for every rule. Training seeds {seeds} ({len(m['seeds'])} per rule); "
            f"{counted(m['trials'], 'trial')} per random point; claim (e) within D = {m['within']:g} points of "
            f"`none`'s clean error; {m['elapsed_s']:.0f} s in all{' (--quick)' if m['quick'] else ''}.")


def counted(n: int, word: str) -> str:
    """``1 trial``, ``3 trials``."""
    return f"{n} {word}{'' if n == 1 else 's'}"


ONE_SEED = ("One training seed per rule: there is no interval over seeds, so every claim is inconclusive "
            "(--seeds 2 or more).")


def seed_warning(result: GridResult) -> list[str]:
    return [ONE_SEED, ""] if len(result.meta["seeds"]) < 2 else []


def claim_row(c: Claim) -> list[str]:
    """A claim's cells: effect, threshold, interval, seeds, test images, verdict, reason."""
    e = c.deciding.effect if c.deciding else None
    effect = "-" if e is None else f"{e.name}: {amount(e.span.mean, e.unit)}"
    interval = "-" if e is None or not e.defined else f"[{number(e.span.low, e.unit)}, {number(e.span.high, e.unit)}]"
    return [effect, c.threshold.text, interval, str(c.n_seeds), str(c.n_test or "-"), f"**{c.verdict}**", c.reason]


def claims_markdown(claims: list[Claim]) -> list[str]:
    heads = ["claim", "statement", "effect", "threshold", "interval", "seeds", "test images", "verdict", "reason"]
    lines = ["| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]
    lines += ["| " + " | ".join([f"({c.id})", c.statement, *claim_row(c)]) + " |" for c in claims]
    for c in claims:
        lines += ["", f"### ({c.id}) {c.statement}: {c.verdict}", "", f"Tested: {c.test}; threshold: "
                  f"{c.threshold.text} ({c.threshold.why}).", ""]
        lines += [f"- {p.effect.text}: **{VERDICT[p.outcome]}**: {p.reason}" for p in c.parts]
        lines += [f"- {c.missing}"] if c.missing else []
        lines += ["", c.note] if c.note else []
    return [*lines, ""]


def table_markdown(result: GridResult) -> list[str]:
    columns, matrix = cell_matrix(result)
    heads = ["rule", *(("clean" if i == 0 else c.label) for i, c in enumerate(columns))]
    lines = ["| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]
    lines += [f"| {rule} | " + " | ".join(interval_text(iv) for iv in cells) + " |" for rule, cells in matrix.items()]
    return lines


def bits_markdown(result: GridResult) -> list[str]:
    """Claim (e)'s fewest bits for every rule, with the point each seed reached and the points not counted."""
    claim = next((c for c in result.claims if c.key == "bits" and c.bits), None)
    if claim is None:
        return ["No fewest bits: " + (next((c.missing for c in result.claims if c.key == "bits"), "") or "-")]
    lines = ["| rule | fewest bits/weight [interval] | per seed: point (error %) | not counted: its own projection |",
             "|---|---|---|---|"]
    for b in claim.bits:
        per_seed = "; ".join("never within" if p == "-" else f"{p} ({pct(e, 1)})" for p, e in zip(b.points, b.errors))
        bits = "-" if math.isnan(b.mean) else number(b.mean, "bits") + (
            "" if math.isnan(b.low) else f" [{number(b.low, 'bits')}, {number(b.high, 'bits')}]")
        lines.append(f"| {b.rule} | {bits} | {per_seed or '-'} | {', '.join(b.excluded) or '-'} |")
    return lines


def training_markdown(result: GridResult) -> list[str]:
    heads = ["rule", "seed", "final train loss", "clean test error %", "projected test error %", "train s"]
    lines = ["| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]
    for rule, by_seed in result.training.items():
        for seed, rec in by_seed.items():
            lines.append(f"| {rule} | {seed} | {rec['loss'][-1]:.4f} | {pct(rec['test_error'], 2)} | "
                         f"{pct(rec['test_error_projected'], 2)} | {rec['train_s']:.1f} |")
    return lines


def grid_markdown(result: GridResult, figure: str | None = None) -> str:
    lines = [f"# Merolla et al. 2016 (arXiv:1606.01981) on {result.meta['dataset']}: training rule x test-time "
             "distortion", "", recipe_line(result), "", "## Claims", "", *seed_warning(result),
             *claims_markdown(result.claims),
             INTERVAL_NOTE, "", "## Test error at the paper's strengths", "",
             "Test error in %, mean [interval] over training seeds (and trials of a random distortion), of the "
             "model trained with each rule (its hidden weights), clean and under each test-time distortion. The "
             "whole curves are in `results.csv` and `summary.csv`.", "", *table_markdown(result), "",
             f"## Fewest effective bits within {result.config.within:g} points of `none`'s clean error (claim e)", "",
             *bits_markdown(result), "", "## Training", "", *training_markdown(result), "",
             "`projected test error`: with the training projection applied (one draw for a random rule); the "
             "checkpoints hold the hidden weights, which every other number evaluates.", ""]
    if figure:
        lines += [f"![error vs strength per rule]({figure})", ""]
    return "\n".join(lines)


# ------------------------------------------------------------------ files


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
    for name in GRID_FILES:  # a write-protected file of an earlier run: refused now, not after the work
        check_writable(out_dir / name)
    return out_dir


def claims_document(result: GridResult) -> dict:
    """``claims.json``: the run's meta (recipe, seeds, trials, within), how intervals are made, the claims."""
    return {"meta": result.meta, "interval": {"level": LEVEL, "kind": "seed range of test-set and trial bands",
                                              "note": INTERVAL_NOTE},
            "claims": claims_json(result.claims)}


def bits_marks(result: GridResult):
    """Claim (e)'s deciding points for the figure (:class:`.figure.Marks`), ``None`` without them."""
    from .figure import Marks

    claim = next((c for c in result.claims if c.key == "bits" and c.bits), None)
    if claim is None:
        return None
    decide = tuple(dict.fromkeys((b.rule, *a) for b in claim.bits for a in b.at if a is not None))
    own = tuple((b.rule, *a) for b in claim.bits for a in b.excluded_at)
    return Marks(decide, own, cell(result.rows, RULE_NONE, CLEAN).mean + result.config.within / 100)


GRID_FILES = ("results.csv", "summary.csv", "claims.json", "figure.png", "report.md")  # what write_grid writes


def write_grid(result: GridResult, out_dir: Path) -> list[Path]:
    """``results.csv`` (every row, with ``rule`` and ``train_seed``), ``summary.csv`` (cells over seeds and
    trials), ``claims.json``, ``figure.png`` (with matplotlib) and ``report.md`` in ``out_dir``."""
    out_dir = prepare_dir(out_dir)
    document = json.dumps(claims_document(result), indent=2, allow_nan=False)
    written = [atomic_write(out_dir / "results.csv", lambda p: result.rows.to_csv(p, index=False)),
               atomic_write(out_dir / "summary.csv", lambda p: result.summary.to_csv(p, index=False)),
               atomic_write(out_dir / "claims.json", lambda p: p.write_text(document + "\n"))]
    from .figure import plot_grid

    figure = plot_grid(result.summary, out_dir / "figure.png", bits_marks(result))
    if figure is not None:
        written.append(figure)
    text = grid_markdown(result, figure.name if figure is not None else None)
    written.append(atomic_write(out_dir / "report.md", lambda p: p.write_text(text)))
    return written
