"""Rendering and writing gate verdicts: a rich table, JUnit XML, Markdown for a CI job summary, JSON.

The JSON file is a sweep results file (``{"meta", "rows", "summary"}``) with a ``gate`` block added, so it
serves as a later ``--baseline``. Every file is written atomically (``report.atomic_write``).
"""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from pathlib import Path

from rich.box import SIMPLE_HEAD
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..engine.passes.metrics import get_metric
from ..engine.weights.coverage import coverage_parts, coverage_text, low_coverage_summary
from ..report.files import atomic_write, jsonable, records
from ..report.text import num, pack, pct
from .settings import ARGUMENT, COMMAND_LINE
from .verdict import Check, GateResult, Verdict

MEASURES = {"max_error": "error", "max_drop": "error drop", "min_agreement": "agreement",
            "max_bits": "bits/weight", "max_regression": "error rise vs baseline"}
METRIC_MEASURES = {"max": "{}", "min": "{}", "max_increase": "{} rise", "min_ratio": "{} ratio to clean"}


# ------------------------------------------------------------------ text pieces

def number(limit: str, x: float) -> str:
    """A value as ``wrobust sweep`` prints it: fractions in percent (``4.61%``), their differences in
    percentage points with a sign (``+1.69 pp``), bits with 3 decimals, a metric's value with 4 significant
    digits (a rise with a sign)."""
    if x is None or math.isnan(x):
        return "-"
    if limit == "max_bits":
        return f"{x:.3f}"
    if limit in ("max", "min", "min_ratio"):
        return num(x)
    if limit == "max_increase":
        return ("+" if x >= 0 else "") + num(x)
    return f"{100 * x:+.2f} pp" if limit in ("max_regression", "max_drop") else f"{pct(x)}%"


def measure_text(c: Check) -> str:
    """What a check measures: ``error``, ``perplexity``, ``perplexity rise``, ..."""
    return METRIC_MEASURES[c.limit].format(c.metric) if c.limit in METRIC_MEASURES else MEASURES[c.limit]


def limit_text(c: Check) -> str:
    return f"{c.relation} {number(c.limit, c.threshold)}"


def status(c: Check) -> str:
    return {True: "PASS", False: "FAIL", None: "n/a"}[c.passed]


def check_line(v: Verdict, c: Check) -> str:
    """One line for a log: ``FAIL addnorm sigma=0.3: error 0.3042 (95% CI high) > limit 0.1500``."""
    rel = c.relation if c.passed is not False else {"<=": ">", ">=": "<"}[c.relation]
    measured = f"{measure_text(c)} {number(c.limit, c.value)} ({c.judged_on})"
    if c.passed is None or math.isnan(c.value):
        measured = f"{measure_text(c)}: {c.note}"
        return f"{status(c)} {v.requirement.name}: {measured}"
    note = f"; {c.note}" if c.note else ""
    return f"{status(c)} {v.requirement.name}: {measured} {rel} limit {number(c.limit, c.threshold)}{note}"


def verdict_line(result: GateResult) -> str:
    """``gate passed: 3 of 3 requirements met``, ``gate FAILED: 1 of 4 requirements not met``; with ``; warning:
    only 2.58% of the parameters outside embeddings were distorted`` where the run warned so."""
    total, failed = len(result.verdicts), len(result.failed)
    head = (f"gate passed: {total} of {total} requirements met" if result.passed
            else f"gate FAILED: {result.broken}" if result.broken
            else f"gate FAILED: {failed} of {total} requirements not met")
    low = low_coverage_summary(result.meta.get("coverage"))
    return head + (f"; warning: {low}" if low else "")


def context_parts(result: GateResult) -> list[str]:
    """What the verdicts were measured on, in parts a line may break between: the model and data, the clean
    values, the normalisation, the trials and seed, how limits were judged, the settings the command line (or a
    call's arguments) gave, and what was distorted (``engine.weights.coverage``)."""
    m, p = result.meta, result.policy
    clean = result.summary[result.summary["distortion"] == "none"].iloc[0]
    parts = [f"{m.get('model')} on {m.get('dataset')}, n={m.get('n')}", clean_values(clean, p)]
    if m.get("normalization_text"):
        parts.append(f"normalisation {m['normalization_text']} (from {m.get('normalization_source')})")
    parts += [f"{trials_text(p)}, seed {p.seed}", f"judged on {judge_text(p.judge)}"]
    for origin, by in ((COMMAND_LINE, "from the command line"), (ARGUMENT, "from the call's arguments")):
        given = [k for k, v in p.sources.items() if v == origin]
        if given:
            parts.append(f"{by}: " + ", ".join(given))
    return parts + (coverage_parts(m["coverage"]) if isinstance(m.get("coverage"), dict) else [])


def context(result: GateResult) -> str:
    return "; ".join(context_parts(result))


def trials_text(policy) -> str:
    if policy.trials != "auto":
        return f"{policy.trials} trials"
    return f"trials until decided (3 to {policy.trial_rule.max_trials})"


def clean_values(clean, policy) -> str:
    """``clean error 2.54%`` (as always), and the clean value of each other metric a requirement names."""
    others = [n for n in policy.metrics if n not in ("error", "agreement")]
    parts = [f"clean {n} {num(clean.get(f'{get_metric(n).column}_mean', math.nan))}" for n in others]
    if not others or not math.isnan(clean["error_mean"]):
        parts.insert(0, f"clean error {number('max_error', clean['error_mean'])}")
    return ", ".join(parts)


def judge_text(judge: str) -> str:
    return "the mean" if judge == "mean" else "the conservative end of the 95% CI"


def table_rows(result: GateResult) -> list[list[str]]:
    """``[requirement, measure, limit, measured, judged on, trials, result]`` per check; the name and the
    trials on the requirement's first line."""
    out = []
    for v in result.verdicts:
        for i, c in enumerate(v.checks):
            measured = number(c.limit, c.value) if c.passed is not None else "-"
            first = i == 0
            out.append([v.requirement.name if first else "", measure_text(c), limit_text(c), measured,
                        c.judged_on if c.passed is not None else c.note, str(v.trials) if first else "",
                        status(c)])
    return out


HEADERS = ["requirement", "measure", "limit", "measured", "judged on", "trials", "result"]
RIGHT = ("limit", "measured", "trials")
SHORT = ("limit", "measured", "trials", "result")  # never wrapped: the other columns give way


# ------------------------------------------------------------------ terminal

def render_gate(result: GateResult, console: Console, table: bool = True) -> None:
    """What was measured (lines packed to the console's width), the table of checks (long texts wrap inside
    their cells), the failing checks one per line, the notes, and the verdict line last."""
    if table:
        for line in pack(context_parts(result), console.width):
            console.print(line, markup=False, highlight=False)
        t = Table(box=SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 0))  # one space between columns
        for h in HEADERS:
            t.add_column(h, justify="right" if h in RIGHT else "left", overflow="fold", no_wrap=h in SHORT)
        for row in table_rows(result):
            style = {"PASS": "green", "FAIL": "bold red"}.get(row[-1])
            t.add_row(*map(escape, row[:-1]), f"[{style}]{row[-1]}[/]" if style else row[-1])
        console.print(t)
    lines = [f"FAIL {result.broken}"] if result.broken else []
    lines += [check_line(v, c) for v in result.failed for c in v.failures]
    lines += [f"warning: {w}" for w in result.warnings] + [f"note: {n}" for n in result.notes]
    for line in lines:
        console.print(line, markup=False, highlight=False, overflow="fold")
    console.print(verdict_line(result), markup=False, highlight=False, overflow="fold",
                  style=None if result.passed else "bold red")


# ------------------------------------------------------------------ JUnit XML

def junit_xml(result: GateResult) -> ET.ElementTree:
    """One testsuite, one testcase per requirement; a failing requirement's testcase has a <failure>."""
    broken = bool(result.broken)  # a broken clean model is a failing test case of its own
    n, failures = str(len(result.verdicts) + broken), str(len(result.failed) + broken)
    elapsed = f"{result.meta.get('elapsed_s', 0.0):.3f}"
    root = ET.Element("testsuites", name="wrobust gate", tests=n, failures=failures, errors="0", time=elapsed)
    suite = ET.SubElement(root, "testsuite", name=f"wrobust gate: {result.meta.get('model')}", tests=n,
                          failures=failures, errors="0", skipped="0", time=elapsed)
    props = ET.SubElement(suite, "properties")
    for key in ("model", "model_sha256", "dataset", "n", "seed", "device", "version"):
        ET.SubElement(props, "property", name=key, value=str(result.meta.get(key)))
    ET.SubElement(props, "property", name="policy", value=result.policy.source)
    for key, value in setting_values(result.policy):
        ET.SubElement(props, "property", name=f"setting.{key}", value=value)
    for key, value in coverage_properties(result.meta):
        ET.SubElement(props, "property", name=key, value=value)
    if broken:
        clean = ET.SubElement(suite, "testcase", classname="wrobust.gate", name="clean model", time="0")
        ET.SubElement(clean, "failure", message=result.broken, type="BrokenModel").text = result.broken
    for name, v in zip(case_names(result.verdicts), result.verdicts):
        case = ET.SubElement(suite, "testcase", classname="wrobust.gate", name=name, time="0")
        own = ET.SubElement(case, "properties")
        ET.SubElement(own, "property", name="trials", value=str(v.trials))
        ET.SubElement(own, "property", name="stopped", value=v.stopped)
        if not v.passed:
            message = "; ".join(check_line(v, c)[5:] for c in v.failures)
            failure = ET.SubElement(case, "failure", message=message, type="RequirementFailed")
            failure.text = "\n".join(check_line(v, c) for c in v.failures)
        ET.SubElement(case, "system-out").text = "\n".join(check_line(v, c) for c in v.checks)
    ET.indent(root)
    return ET.ElementTree(root)


def coverage_properties(meta: dict) -> list[tuple[str, str]]:
    """The coverage line and its figures (``engine.weights.coverage``), for a meta that has them."""
    cov = meta.get("coverage")
    if not isinstance(cov, dict):
        return []
    return [("coverage", coverage_text(cov)), ("distorted_tensors", str(cov["tensors"])),
            ("distorted_weights", str(cov["weights"])), ("parameters", str(cov["parameters"])),
            ("coverage_percent", f"{cov['percent']:.4f}"), ("targets_rule", cov["rule"])]


def setting_values(policy) -> list[tuple[str, str]]:
    """``(key, "VALUE (from the policy)")`` of each setting and run key that was given, and where it came from."""
    def text(v: object) -> str:
        return ",".join(map(str, v)) if isinstance(v, (tuple, list)) else str(v)

    values = {**policy.to_dict(), **policy.settings}
    return [(k, f"{text(values.get(k))} (from the {where})") for k, where in policy.sources.items()]


def case_names(verdicts: list[Verdict]) -> list[str]:
    """Requirement names, made unique (a repeated name gets its policy key)."""
    names = [v.requirement.name for v in verdicts]
    return [n if names.count(n) == 1 else f"{n} ({v.requirement.key})" for n, v in zip(names, verdicts)]


# ------------------------------------------------------------------ Markdown

def gate_markdown(result: GateResult) -> str:
    """A Markdown report for a CI job summary (GitHub's ``$GITHUB_STEP_SUMMARY``)."""
    mark = {"PASS": "✅", "FAIL": "❌", "n/a": "➖"}
    head = ("✅ passed" if result.passed else "❌ failed (broken clean model)" if result.broken
            else f"❌ failed ({len(result.failed)} of {len(result.verdicts)})")
    broken = [f"❌ **{_md(result.broken)}**", ""] if result.broken else []
    lines = [f"## wrobust gate: {head}", "", _md(context(result)), "", *broken,
             "| | " + " | ".join(HEADERS[:-1]) + " |", "|---" * len(HEADERS) + "|"]
    lines += [f"| {mark[r[-1]]} | " + " | ".join(_md(x) for x in r[:-1]) + " |" for r in table_rows(result)]
    if result.warnings:
        lines += ["", *(f"⚠️ **Warning:** {_md(w)}" for w in result.warnings)]
    if result.notes:
        lines += ["", "Notes:", *(f"- {_md(n)}" for n in result.notes)]
    return "\n".join(lines) + "\n"


def _md(text: str) -> str:
    return text.replace("|", "\\|")


# ------------------------------------------------------------------ JSON and files

def gate_document(result: GateResult) -> dict:
    """The ``-o`` JSON: the sweep results file (meta, rows, summary) plus the verdicts under ``gate``."""
    reqs = [{"name": v.requirement.name, "key": v.requirement.key, "distortion": v.requirement.distortion.spec,
             "strength": v.requirement.strength, "judge": v.requirement.judge, "limits": v.requirement.limits,
             "max_regression": v.requirement.max_regression, "passed": v.passed,
             "metric": v.requirement.metric, "trials": v.trials, "stopped": v.stopped,
             "checks": [{"limit": c.limit, "threshold": c.threshold, "value": c.value, "mean": c.mean,
                         "judged_on": c.judged_on, "passed": c.passed, "note": c.note,
                         **({"metric": c.metric} if c.metric else {})} for c in v.checks]}
            for v in result.verdicts]
    gate = {"passed": result.passed, "policy": result.policy.to_dict(), "baseline": result.baseline,
            "clean_model": result.health.to_meta()["health"], "requirements": reqs, "notes": result.notes,
            "warnings": result.warnings}
    return {"meta": jsonable(result.meta), "rows": records(result.rows), "summary": records(result.summary),
            "gate": jsonable(gate)}


def write_gate_files(result: GateResult, output: Path | None = None, junit: Path | None = None,
                     summary: Path | None = None) -> list[Path]:
    """Write the files asked for, each atomically; return the paths written."""
    written = []
    if output is not None:
        text = json.dumps(gate_document(result), indent=1) + "\n"
        written.append(atomic_write(output, lambda p: p.write_text(text, encoding="utf-8")))
    if junit is not None:
        tree = junit_xml(result)
        written.append(atomic_write(junit, lambda p: tree.write(p, encoding="utf-8", xml_declaration=True)))
    if summary is not None:
        text = gate_markdown(result)
        written.append(atomic_write(summary, lambda p: p.write_text(text, encoding="utf-8")))
    return written
