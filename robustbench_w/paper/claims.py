"""The five claims of Merolla et al. 2016 (arXiv:1606.01981) that ``wrobust reproduce`` tests, each with a
verdict that follows from intervals over training seeds (:mod:`.cells`), never from a tuned threshold.

A **comparison** says that one quantity lies below (or above) another: it *holds* when their intervals do
not overlap and lie that way round, is *opposite* when they do not overlap the other way round, and
*overlaps* otherwise (also when an interval is undefined: fewer than two seeds). A **part** gathers
comparisons with a quantifier: ``each`` (shown when all hold, not shown when one is opposite) or ``some``
(shown when one holds, not shown when all are opposite). A **claim** is shown when each of its parts is
shown, not shown when one of them is not shown, and inconclusive otherwise; it is *not tested* when the grid
lacks the rules or columns it needs.

1. ``fragile``: ordinary training is fragile to sign and round.
2. ``clipping``: clipping alone improves robustness to round and to additive noise.
3. ``stochastic``: stoch and stochm are robust across every test distortion (the spread of their errors
   across the columns, against the spread of ``none``).
4. ``sign``: a sign-trained network works under sign and not on its hidden weights.
5. ``bits``: a network trained with a projection needs fewer effective bits than ordinary training to stay
   within ``k`` points of its clean error (beside the paper's 11% CIFAR-10 error at 0.68 bits per weight).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import pandas as pd

from .cells import BITS_FAMILIES, Interval, cell, fewest_bits, mean_over, spread
from .grid import CLEAN, Column
from .projection import RULE_CLIP, RULE_NONE, parse_rule

SHOWN, NOT_SHOWN, INCONCLUSIVE, NOT_TESTED = "shown", "not shown", "inconclusive", "not tested"
VERDICT = {1: SHOWN, -1: NOT_SHOWN, 0: INCONCLUSIVE, None: NOT_TESTED}
COMPARISON = {1: "holds", -1: "opposite", 0: "overlap"}
PAPER_BITS = {"dataset": "CIFAR-10", "error": 0.11, "bits": 0.68}


@dataclass(frozen=True)
class Quantity:
    """One side of a comparison: a rule's error in one column, or a per-seed quantity over several."""

    rule: str
    measure: str  # "error", "spread", "mean error" or "fewest bits"
    interval: Interval
    over: tuple[Column, ...]
    extra: dict = field(default_factory=dict)

    @property
    def label(self) -> str:
        if self.measure == "error":
            return f"`{self.rule}` {_column_words(self.over[0])}"
        if self.measure == "mean error":
            return f"`{self.rule}` mean error over {', '.join(c.label for c in self.over)}"
        return f"`{self.rule}` {self.measure}"


def _column_words(column: Column) -> str:
    return "clean" if column == CLEAN else f"under {column.label}"


@dataclass(frozen=True)
class Comparison:
    left: Quantity
    relation: str  # "below" or "above"
    right: Quantity

    @property
    def outcome(self) -> int:
        if self.relation == "below":
            return self.left.interval.below(self.right.interval)
        return self.right.interval.below(self.left.interval)


@dataclass(frozen=True)
class Part:
    name: str
    quantifier: str  # "each" or "some"
    comparisons: tuple[Comparison, ...]

    @property
    def outcome(self) -> int | None:
        return combine([c.outcome for c in self.comparisons], self.quantifier)


@dataclass(frozen=True)
class Claim:
    number: int
    key: str
    title: str
    test: str  # how the grid tests it
    parts: tuple[Part, ...]
    note: str = ""  # why it was not tested, or what stands beside it (claim 5)

    @property
    def outcome(self) -> int | None:
        if not self.parts:
            return None
        return combine([p.outcome for p in self.parts], "each")

    @property
    def verdict(self) -> str:
        return VERDICT[self.outcome]


def combine(outcomes: Sequence[int | None], quantifier: str) -> int | None:
    """``each``: 1 when all are 1, -1 when one is -1; ``some``: 1 when one is 1, -1 when all are -1; else 0."""
    values = [o for o in outcomes if o is not None]
    if not values or len(values) < len(outcomes):
        return None
    if quantifier == "each":
        return -1 if -1 in values else 1 if all(v == 1 for v in values) else 0
    return 1 if 1 in values else -1 if all(v == -1 for v in values) else 0


# ------------------------------------------------------------------ the claims


@dataclass(frozen=True)
class Evidence:
    """What the claims read: the rows, the rules, the columns (clean first) and ``within`` (points)."""

    rows: pd.DataFrame
    rules: list[str]
    columns: list[Column]
    within: float

    def error(self, rule: str, column: Column) -> Quantity:
        return Quantity(rule, "error", cell(self.rows, rule, column), (column,))

    def named(self, name: str) -> list[Column]:
        return [c for c in self.columns if c.dist.name == name]

    def projected_by(self, *names: str) -> list[str]:
        return [r for r in self.rules if (p := parse_rule(r).projection) is not None and p.name in names]

    def missing(self, rules: Sequence[str], columns: Sequence[str]) -> str:
        lacking = [f"rule `{r}`" for r in rules if r not in self.rules]
        lacking += [f"a `{c}` column (--at)" for c in columns if not self.named(c)]
        return f"not tested: the grid has no {' and no '.join(lacking)}" if lacking else ""


def claim_fragile(ev: Evidence) -> Claim:
    head = ("Ordinary training is fragile to sign and round",
            "the error of `none` under each is above its clean error")
    why = ev.missing([RULE_NONE], ["sign", "round"])
    if why:
        return Claim(1, "fragile", *head, (), why)
    clean = ev.error(RULE_NONE, CLEAN)
    parts = tuple(Part(name, "each", tuple(Comparison(ev.error(RULE_NONE, c), "above", clean) for c in ev.named(name)))
                  for name in ("sign", "round"))
    return Claim(1, "fragile", *head, parts)


def claim_clipping(ev: Evidence) -> Claim:
    head = ("Clipping alone improves robustness to round and to additive noise",
            "`clip` has a lower error than `none` under round, and a lower mean error over the addnorm columns")
    why = ev.missing([RULE_NONE, RULE_CLIP], ["round", "addnorm"])
    if why:
        return Claim(2, "clipping", *head, (), why)
    rounds = tuple(Comparison(ev.error(RULE_CLIP, c), "below", ev.error(RULE_NONE, c)) for c in ev.named("round"))
    noise = ev.named("addnorm")
    noisy = [Quantity(r, "mean error", mean_over(ev.rows, r, noise), tuple(noise)) for r in (RULE_CLIP, RULE_NONE)]
    noise_part = Part("additive noise", "each", (Comparison(noisy[0], "below", noisy[1]),))
    return Claim(2, "clipping", *head, (Part("round", "each", rounds), noise_part))


def claim_stochastic(ev: Evidence) -> Claim:
    head = ("Training with stoch or stochm makes a network robust across every test distortion",
            "the spread (largest minus smallest) of its errors across the columns, clean included, is below that "
            "of `none`")
    rules = ev.projected_by("stoch", "stochm")
    if RULE_NONE not in ev.rules or not rules or len(ev.columns) < 2:
        what = "rule `none`" if RULE_NONE not in ev.rules else "stoch or stochm rule" if not rules else "column (--at)"
        return Claim(3, "stochastic", *head, (), f"not tested: the grid has no {what}")
    spreads = {r: Quantity(r, "spread", spread(ev.rows, r, ev.columns), tuple(ev.columns)) for r in [RULE_NONE, *rules]}
    parts = tuple(Part(r, "each", (Comparison(spreads[r], "below", spreads[RULE_NONE]),)) for r in rules)
    return Claim(3, "stochastic", *head, parts)


def claim_sign(ev: Evidence) -> Claim:
    head = ("A sign-trained network works under sign and not on its hidden weights",
            "its error with its weights binarized (test-time sign) is below its error on the hidden weights as "
            "they are")
    rules = ev.projected_by("sign")
    if not rules or not ev.named("sign"):
        return Claim(4, "sign", *head, (), ev.missing(rules or ["sign"], ["sign"]))
    parts = tuple(Part(r, "each", tuple(Comparison(ev.error(r, c), "below", ev.error(r, CLEAN))
                                        for c in ev.named("sign"))) for r in rules)
    return Claim(4, "sign", *head, parts)


def claim_bits(ev: Evidence) -> Claim:
    k = f"{ev.within:g}"
    head = (f"Training with a projection lets a network stay within {k} points of its clean error at fewer bits",
            f"the fewest effective bits per weight at which it stays within {k} points ({' and '.join(BITS_FAMILIES)} "
            f"sweeps) are, for some projection rule, below those of `none`")
    paper = (f"The paper: one {PAPER_BITS['dataset']} network at {100 * PAPER_BITS['error']:g}% error with "
             f"{PAPER_BITS['bits']} effective bits per weight (another dataset and network: set beside, not compared).")
    rules = [r for r in ev.rules if parse_rule(r).projection is not None]
    swept = set(ev.rows["distortion"]) & set(BITS_FAMILIES)
    if RULE_NONE not in ev.rules or not rules or not swept:
        what = ("rule `none`" if RULE_NONE not in ev.rules else "projection rule" if not rules
                else "ternarize or quantize curve")
        return Claim(5, "bits", *head, (), f"not tested: the grid has no {what}. {paper}")
    bits = {r: _bits_quantity(ev, r) for r in [RULE_NONE, *rules]}
    comparisons = tuple(Comparison(bits[r], "below", bits[RULE_NONE]) for r in rules)
    return Claim(5, "bits", *head, (Part("projection rules", "some", comparisons),), paper)


def _bits_quantity(ev: Evidence, rule: str) -> Quantity:
    found = fewest_bits(ev.rows, rule, ev.within)
    return Quantity(rule, "fewest bits", found.interval, (),
                    {"within": ev.within, "points": list(found.points), "errors": [_num(e) for e in found.errors]})


CLAIMS: tuple[Callable[[Evidence], Claim], ...] = (
    claim_fragile, claim_clipping, claim_stochastic, claim_sign, claim_bits)


def judge_claims(rows: pd.DataFrame, rules: list[str], columns: list[Column], within: float) -> list[Claim]:
    """The five claims, in order, from the grid's rows."""
    ev = Evidence(rows, rules, columns, within)
    return [make(ev) for make in CLAIMS]


# ------------------------------------------------------------------ machine-readable form


def claims_json(claims: Sequence[Claim]) -> list[dict]:
    """``claims.json``'s ``claims``: each claim with its verdict, parts, comparisons and the numbers they cite."""
    return [{"number": c.number, "key": c.key, "claim": c.title, "test": c.test, "verdict": c.verdict, "note": c.note,
             "parts": [_part_json(p) for p in c.parts]} for c in claims]


def _part_json(part: Part) -> dict:
    return {"name": part.name, "quantifier": part.quantifier, "verdict": VERDICT[part.outcome],
            "comparisons": [{"left": _quantity_json(c.left), "relation": c.relation, "right": _quantity_json(c.right),
                             "outcome": COMPARISON[c.outcome]} for c in part.comparisons]}


def _quantity_json(q: Quantity) -> dict:
    iv = q.interval
    return {"rule": q.rule, "measure": q.measure, "label": q.label.replace("`", ""),
            "over": [{"spec": c.spec, "strength": None if math.isnan(c.strength) else c.strength} for c in q.over],
            "mean": _num(iv.mean), "low": _num(iv.low), "high": _num(iv.high), "seeds": iv.seeds,
            "values": [_num(v) for v in iv.values], **q.extra}


def _num(x: float) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else x
