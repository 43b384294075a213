"""The five claims of Merolla et al. 2016 (arXiv:1606.01981) that ``wrobust reproduce`` tests. Each rests on
an **effect** (a difference or a share, with its numbers), a **threshold** that makes it meaningful and an
**interval** that holds the spread over training seeds, trials and the test set (:mod:`.bands`,
:mod:`.effects`, :mod:`.fewest`).

a. ``fragile``: ordinary training (``none``) loses more than 10 points under sign and under round.
b. ``clipping``: clipping alone (``clip``) removes more than half of ``none``'s loss under round and under
   additive noise (the mean over the ``addnorm`` columns).
c. ``stochastic``: the spread of the errors of a ``stoch`` or ``stochm`` network across the columns is less
   than half of ``none``'s.
d. ``sign``: a sign-trained network's error on its hidden weights exceeds its error under sign by more than
   10 points.
e. ``bits``: some network trained with a projection stays within ``D`` points of ``none``'s clean error at
   fewer effective bits per weight than ``none`` (its own training projection not counted).

A claim with several parts (columns, rules) is decided by its weakest part when each must hold (a-d) and by
its strongest when one suffices (e: the paper's "one such network"). Data the grid lacks makes a claim
``inconclusive``, with the reason.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import pandas as pd

from .bands import LEVEL, Measure, linear, spread
from .effects import MORE, LESS, VERDICT, Effect, Span, Threshold, difference, judge, ratio, share_removed
from .fewest import BITS_FAMILIES, FewestBits, fewest_bits
from .grid import CLEAN, Column
from .projection import RULE_CLIP, RULE_NONE, parse_rule

PAPER_BITS = {"dataset": "CIFAR-10", "error": 0.11, "bits": 0.68}
ONE_SEED = "one training seed: no interval over seeds"

FRAGILE = Threshold(MORE, 10.0, "points", "a loss of 10 points is several times the test-set term (2-5 points at "
                    "these errors on 355 images) and far beyond the clean errors of 1-3%: a network that loses less "
                    "is not fragile in the paper's sense (its ordinary networks fail under binarization)")
CLIPPING = Threshold(MORE, 0.5, "share", "\"improves robustness\" read as: clipping removes more than half of what "
                     "ordinary training loses; a smaller share could be a detail of the recipe")
STOCHASTIC = Threshold(LESS, 0.5, "share", "\"robust across every distortion\" read as: the errors spread over less "
                       "than half the range that ordinary training spreads over")
SIGN = Threshold(MORE, 10.0, "points", "the hidden weights must be worse than their binarization by as much as (a) "
                 "asks of ordinary training's loss: the network works only in its binary code")
BITS = Threshold(MORE, 0.0, "bits", "any saving beyond the interval: the bits grids are coarse (ternarize between 1 "
                 "and about 1.6 bits, quantize in whole bits), so a separated saving is at least a step of the grid")


@dataclass(frozen=True)
class Input:
    """A per-seed quantity an effect is computed from: ``kind`` ``sum`` (``sum coef * error`` over ``terms``)
    or ``spread`` (over the columns of ``terms``), times ``scale`` (100: points)."""

    rule: str
    kind: str
    terms: tuple[tuple[Column, float], ...]
    scale: float
    measure: Measure

    @property
    def mean(self) -> float:
        return self.measure.mean

    @property
    def low(self) -> float:
        return self.measure.low

    @property
    def high(self) -> float:
        return self.measure.high


@dataclass(frozen=True)
class Part:
    effect: Effect
    outcome: int
    reason: str
    margin: float  # how far the interval lies beyond the threshold (negative: short of it)


@dataclass(frozen=True)
class Claim:
    id: str
    key: str
    statement: str
    test: str
    threshold: Threshold
    n_seeds: int
    n_test: int | None
    parts: tuple[Part, ...] = ()
    quantifier: str = "each"  # "each": every part must hold; "some": one suffices
    missing: str = ""  # the data the grid lacks (the claim is then inconclusive)
    note: str = ""
    bits: tuple[FewestBits, ...] = ()  # claim e: every rule's fewest bits

    @property
    def deciding(self) -> Part | None:
        if self.missing or not self.parts:
            return None
        key = (lambda p: (p.outcome, p.margin))
        return min(self.parts, key=key) if self.quantifier == "each" else max(self.parts, key=key)

    @property
    def outcome(self) -> int:
        return self.deciding.outcome if self.deciding else 0

    @property
    def verdict(self) -> str:
        return VERDICT[self.outcome]

    @property
    def reason(self) -> str:
        if self.deciding is None:
            return self.missing or "no data"
        n = len(self.parts)
        how = "" if n == 1 else (f" (the weakest of {n} parts; each must hold)" if self.quantifier == "each"
                                 else f" (the strongest of {n} rules; one suffices)")
        return self.deciding.reason + how


# ------------------------------------------------------------------ the evidence


@dataclass(frozen=True)
class Evidence:
    """What the claims read: the rows, the rules, the columns (clean first), ``within`` (D, points), the
    clip bound of the training rules."""

    rows: pd.DataFrame
    rules: list[str]
    columns: list[Column]
    within: float
    clip: float = 1.0
    seeds: list[int] = field(init=False)

    def __post_init__(self):
        object.__setattr__(self, "seeds", sorted(int(s) for s in self.rows["train_seed"].unique()))

    @property
    def n_test(self) -> int | None:
        return int(self.rows["n"].max()) if "n" in self.rows.columns and len(self.rows) else None

    def named(self, name: str) -> list[Column]:
        return [c for c in self.columns if c.dist.name == name]

    def projected_by(self, *names: str) -> list[str]:
        return [r for r in self.rules if (p := parse_rule(r, self.clip).projection) is not None and p.name in names]

    def lacking(self, rules: Sequence[str], columns: Sequence[str], what: Sequence[str] = ()) -> str:
        lacks = [f"rule `{r}`" for r in rules if r not in self.rules]
        lacks += [f"a `{c}` column (--at)" for c in columns if not self.named(c)] + list(what)
        return f"missing data: the grid has no {' and no '.join(lacks)}" if lacks else ""

    def total(self, rule: str, terms: Sequence[tuple[Column, float]], scale: float = 100) -> Input:
        return Input(rule, "sum", tuple(terms), scale, linear(self.rows, rule, terms, self.seeds).scaled(scale))

    def loss(self, rule: str, columns: Sequence[Column]) -> Input:
        """Per seed: the mean error over ``columns`` minus the clean error, in points."""
        return self.total(rule, [*((c, 1 / len(columns)) for c in columns), (CLEAN, -1.0)])

    def spread(self, rule: str) -> Input:
        m = spread(self.rows, rule, self.columns, self.seeds).scaled(100)
        return Input(rule, "spread", tuple((c, 1.0) for c in self.columns), 100, m)

    def part(self, effect: Effect, threshold: Threshold) -> Part:
        if not effect.defined and not effect.undefined:
            effect = replace(effect, undefined=ONE_SEED if len(self.seeds) < 2 else "a seed lacks a value")
        outcome, reason = judge(effect, threshold)
        return Part(effect, outcome, reason, _margin(effect.span, threshold))

    def claim(self, **fields) -> Claim:
        return Claim(n_seeds=len(self.seeds), n_test=self.n_test, **fields)


def _margin(span: Span, threshold: Threshold) -> float:
    m = span.low - threshold.value if threshold.relation == MORE else threshold.value - span.high
    return 0.0 if math.isnan(m) else m


def _zero_reason(span: Span, whole: Input, words: str) -> str:
    """Why a share has no interval when the rest of the data would give one: ``whole``'s reaches 0."""
    return f"{words} interval reaches 0" if math.isnan(span.low) and whole.low <= 0 else ""


# ------------------------------------------------------------------ the claims


def claim_fragile(ev: Evidence) -> Claim:
    head = dict(id="a", key="fragile", statement="Ordinary training is fragile to sign and round", threshold=FRAGILE,
                test="`none`'s loss under each sign and round column: its error there minus its clean error, per seed")
    why = ev.lacking([RULE_NONE], ["sign", "round"])
    if why:
        return ev.claim(**head, missing=why)
    parts = []
    for col in ev.named("sign") + ev.named("round"):
        loss = ev.loss(RULE_NONE, [col])
        parts.append(ev.part(Effect(col.label, f"`none`'s error under {col.label} minus its clean error",
                                    Span(loss.mean, loss.low, loss.high), "points", {"none loss": loss}), FRAGILE))
    return ev.claim(**head, parts=tuple(parts))


def claim_clipping(ev: Evidence) -> Claim:
    head = dict(id="b", key="clipping", threshold=CLIPPING,
                statement="Clipping alone improves robustness to round and to additive noise",
                test="the share of `none`'s loss (error minus clean error) that `clip` removes, 1 - loss(clip) / "
                     "loss(none), under round and as the mean over the addnorm columns")
    why = ev.lacking([RULE_NONE, RULE_CLIP], ["round", "addnorm"])
    if why:
        return ev.claim(**head, missing=why)
    groups = [(c.label, [c]) for c in ev.named("round")] + [("additive noise", ev.named("addnorm"))]
    parts = []
    for name, cols in groups:
        clip, none = ev.loss(RULE_CLIP, cols), ev.loss(RULE_NONE, cols)
        span = share_removed(clip, none)
        effect = Effect(name, f"share of `none`'s loss under {name} that `clip` removes", span, "share",
                        {"clip loss": clip, "none loss": none}, _zero_reason(span, none, "`none`'s loss"))
        parts.append(ev.part(effect, CLIPPING))
    return ev.claim(**head, parts=tuple(parts))


def claim_stochastic(ev: Evidence) -> Claim:
    head = dict(id="c", key="stochastic", threshold=STOCHASTIC,
                statement="Training with stoch or stochm makes a network robust across every test distortion",
                test="the spread (largest minus smallest error over the columns, clean included) of each stoch or "
                     "stochm rule, as a share of `none`'s")
    rules = ev.projected_by("stoch", "stochm")
    why = ev.lacking([RULE_NONE], [], [] if rules else ["stoch or stochm rule"])
    if why or len(ev.columns) < 2:
        return ev.claim(**head, missing=why or "missing data: the grid has no column (--at)")
    none = ev.spread(RULE_NONE)
    parts = []
    for rule in rules:
        mine = ev.spread(rule)
        span = ratio(mine, none)
        effect = Effect(rule, f"`{rule}`'s spread as a share of `none`'s", span, "share",
                        {f"{rule} spread": mine, "none spread": none}, _zero_reason(span, none, "`none`'s spread"))
        parts.append(ev.part(effect, STOCHASTIC))
    return ev.claim(**head, parts=tuple(parts))


def claim_sign(ev: Evidence) -> Claim:
    head = dict(id="d", key="sign", threshold=SIGN,
                statement="A sign-trained network works under sign and not on its hidden weights",
                test="the error of the hidden weights as they are minus the error under test-time sign, per seed")
    rules = ev.projected_by("sign")
    why = ev.lacking([], ["sign"], [] if rules else ["sign-trained rule"])
    if why:
        return ev.claim(**head, missing=why)
    parts = []
    for rule in rules:
        for col in ev.named("sign"):
            gap = ev.total(rule, [(CLEAN, 1.0), (col, -1.0)])
            effect = Effect(f"{rule} under {col.label}", f"`{rule}`'s hidden-weight error minus its error under "
                            f"{col.label}", Span(gap.mean, gap.low, gap.high), "points", {"gap": gap})
            parts.append(ev.part(effect, SIGN))
    return ev.claim(**head, parts=tuple(parts))


def claim_bits(ev: Evidence) -> Claim:
    d = f"{ev.within:g}"
    paper = (f"The paper: one {PAPER_BITS['dataset']} network at {100 * PAPER_BITS['error']:g}% error with "
             f"{PAPER_BITS['bits']} effective bits per weight (another dataset and network: set beside, not compared).")
    head = dict(id="e", key="bits", threshold=BITS, quantifier="some", note=paper,
                statement=f"Training with a projection lets a network stay within {d} points of ordinary training's "
                          f"clean error at fewer effective bits per weight",
                test=f"`none`'s fewest bits minus each projection rule's: the fewest effective bits among the "
                     f"{' and '.join(BITS_FAMILIES)} points whose error is at most {d} points above `none`'s clean "
                     f"error, a rule's own training projection not counted")
    rules = [r for r in ev.rules if parse_rule(r, ev.clip).projection is not None]
    swept = "eff_bits" in ev.rows.columns and bool(set(ev.rows["distortion"]) & set(BITS_FAMILIES))
    why = ev.lacking([RULE_NONE], [], ([] if rules else ["projection rule"]) +
                     ([] if swept else ["ternarize or quantize curve"]))
    if why:
        return ev.claim(**head, missing=why)
    baseline = linear(ev.rows, RULE_NONE, [(CLEAN, 1.0)], ev.seeds)
    bits = {r: fewest_bits(ev.rows, r, baseline, ev.within, ev.clip) for r in ev.rules}
    parts = []
    for rule in rules:
        span = difference(bits[RULE_NONE], bits[rule])
        never = math.isnan(span.low) and len(ev.seeds) >= 2
        unbounded = math.isinf(span.low) or math.isinf(span.high)
        effect = Effect(rule, f"`none`'s fewest bits minus `{rule}`'s", span, "bits",
                        {"none bits": bits[RULE_NONE], f"{rule} bits": bits[rule]},
                        f"neither stays within {d} points at any point swept, even at best" if never else "",
                        f"unbounded: a seed has no point surely within {d} points" if unbounded else "")
        parts.append(ev.part(effect, BITS))
    return ev.claim(**head, parts=tuple(parts), bits=tuple(bits.values()))


CLAIMS: tuple[Callable[[Evidence], Claim], ...] = (
    claim_fragile, claim_clipping, claim_stochastic, claim_sign, claim_bits)


def judge_claims(rows: pd.DataFrame, rules: list[str], columns: list[Column], within: float,
                 clip: float = 1.0) -> list[Claim]:
    """The five claims, in order, from the grid's rows."""
    ev = Evidence(rows, rules, columns, within, clip)
    return [make(ev) for make in CLAIMS]


# ------------------------------------------------------------------ machine-readable form


def claims_json(claims: Sequence[Claim]) -> list[dict]:
    """``claims.json``'s ``claims``: per claim ``id``, ``statement``, ``effect``, ``threshold``,
    ``interval``, ``n_seeds``, ``n_test``, ``verdict``, ``reason``, then its parts with their inputs."""
    return [_claim_json(c) for c in claims]


def _claim_json(c: Claim) -> dict:
    e = c.deciding.effect if c.deciding else None
    t = c.threshold
    return {
        "id": c.id, "key": c.key, "statement": c.statement,
        "effect": None if e is None else {"part": e.name, "text": e.text, "value": _num(e.span.mean), "unit": e.unit},
        "threshold": {"relation": t.relation, "value": t.value, "unit": t.unit, "text": t.text, "why": t.why},
        "interval": {"low": None if e is None else _num(e.span.low), "high": None if e is None else _num(e.span.high),
                     "level": LEVEL},
        "n_seeds": c.n_seeds, "n_test": c.n_test, "verdict": c.verdict, "reason": c.reason,
        "test": c.test, "quantifier": c.quantifier, "note": c.note,
        "parts": [_part_json(p) for p in c.parts],
        **({"bits": [_bits_json(b) for b in c.bits]} if c.bits else {}),
    }


def _part_json(p: Part) -> dict:
    e = p.effect
    return {"name": e.name, "text": e.text, "value": _num(e.span.mean), "low": _num(e.span.low),
            "high": _num(e.span.high), "unit": e.unit, "verdict": VERDICT[p.outcome], "reason": p.reason,
            "inputs": {k: (_bits_json(v) if isinstance(v, FewestBits) else _input_json(v)) for k, v in e.inputs.items()}}


def _input_json(i: Input) -> dict:
    m = i.measure
    return {"rule": i.rule, "kind": i.kind, "scale": i.scale,
            "terms": [{"spec": c.spec, "strength": None if math.isnan(c.strength) else c.strength, "coef": k}
                      for c, k in i.terms],
            "values": [_num(v) for v in m.values], "sds": [_num(s) for s in m.sds],
            "mean": _num(m.mean), "low": _num(m.low), "high": _num(m.high)}


def _bits_json(b: FewestBits) -> dict:
    return {"rule": b.rule, "central": [_num(v) for v in b.central], "optimistic": [_num(v) for v in b.optimistic],
            "pessimistic": [_num(v) for v in b.pessimistic], "points": list(b.points),
            "errors": [_num(v) for v in b.errors], "excluded": list(b.excluded),
            "mean": _num(b.mean), "low": _num(b.low), "high": _num(b.high)}


def _num(x: float | None) -> float | None:
    """JSON's number: ``None`` for ``nan`` and for ``inf`` (a rule that never stays within)."""
    return None if x is None or not math.isfinite(x) else float(x)
