"""What a selection distorts and what it leaves clean: the coverage that every report states.

:func:`coverage` is the ``coverage`` block of a run's meta: the distorted tensors and weights out of all the
model's parameters (each tied parameter once), as a percentage, the clean parameters by role, the share of the
parameters outside embeddings that is distorted, the largest clean tensors and, when that share is below one
half (and the selection starts from the default: an explicit ``--include`` is the user's choice), a
:data:`warning <LOW>` naming the largest clean weight tensors with the ``--include`` that would add them. :func:`coverage_text`
renders it in one line (``distorted 7 tensors, 1,417,216 of 1,417,474 parameters (99.98%); clean: 258
biases``); reports read it from the meta, so a file read back renders the same line.
"""

from __future__ import annotations

import shlex

from .targets import RULES, Selection

LOW = 0.5  # below this share of the parameters outside embeddings distorted, a warning
LARGEST = 3  # clean tensors named in the warning
HINT_NAMES = 8  # at most this many names spelled out in the --include hint


def coverage(sel: Selection) -> dict:
    """The ``coverage`` meta block of a selection (see the module docstring)."""
    chosen, numel = set(sel.names), {n: t.numel() for n, t in sel.params.items()}
    total, distorted = sum(numel.values()), sum(numel[n] for n in chosen)
    clean: dict[str, dict] = {}
    for name in (n for n in sel.params if n not in chosen):
        entry = clean.setdefault(sel.roles.get(name, "other"), {"tensors": 0, "weights": 0})
        entry["tensors"], entry["weights"] = entry["tensors"] + 1, entry["weights"] + numel[name]
    embedded = [n for n in sel.params if sel.roles.get(n) == "embedding"]
    outside = total - sum(numel[n] for n in embedded)
    inside = distorted - sum(numel[n] for n in embedded if n in chosen)
    clean_names = [n for n in sel.params if n not in chosen and n not in embedded]
    weighty = [n for n in clean_names if sel.roles.get(n) not in ("bias", "norm")] or clean_names
    largest = sorted(weighty, key=lambda n: -numel[n])
    cov = {"rule": sel.rule, "rule_text": RULES[sel.rule], "why": sel.why, "tensors": len(chosen),
           "weights": distorted, "parameters": total, "percent": percent(distorted, total),
           "outside_embeddings": outside, "percent_outside_embeddings": percent(inside, outside),
           "clean": clean, "roles": {n: sel.roles.get(n, "other") for n in sel.names},
           "largest_clean": [{"name": n, "weights": numel[n], "role": sel.roles.get(n, "other"),
                              "excluded": n in sel.excluded} for n in largest[:LARGEST]]}
    low = outside and inside < LOW * outside and not sel.included  # an explicit --include is the user's choice
    cov["warning"] = low_coverage(cov, sel.names) if low else ""
    return cov


def percent(part: int, whole: int) -> float:
    return 100.0 * part / whole if whole else 0.0


def low_coverage(cov: dict, targets: list[str]) -> str:
    """``only 4.6% of the parameters outside embeddings are distorted (...); largest clean: ...; ...``."""
    largest = cov["largest_clean"]
    named = ", ".join(f"{c['name']} ({c['weights']:,}, {c['role']}{', by --exclude' if c['excluded'] else ''})"
                      for c in largest)
    text = (f"only {pct(cov['percent_outside_embeddings'])} of the parameters outside embeddings are distorted "
            f"({cov['weights']:,} weights of {cov['outside_embeddings']:,}); largest clean: {named}")
    add = [c["name"] for c in largest if not c["excluded"]]
    if add:
        names = [*targets, *add]
        hint = " ".join(f"--include {shlex.quote(n)}" for n in names) if len(names) <= HINT_NAMES else \
            f"--include with the names of the targets and of {', '.join(add)} (--include replaces the default)"
        text += f"; {hint} adds them"
    dropped = [c["name"] for c in largest if c["excluded"]]
    if dropped:
        text += f"; --exclude leaves out {', '.join(dropped)}"
    return text


def low_coverage_summary(cov: dict | None) -> str:
    """``only 2.58% of the parameters outside embeddings were distorted`` where ``cov`` warned so, else ''."""
    if not isinstance(cov, dict) or not cov.get("warning"):
        return ""
    return f"only {pct(cov['percent_outside_embeddings'])} of the parameters outside embeddings were distorted"


def pct(x: float) -> str:
    """``99.98%``, ``4.623%``, ``100%``: four significant digits (never 100% for a share below one)."""
    text = f"{x:.4g}"
    return f"{'>99.99' if text == '100' and x < 100 else text}%"


def shape_notes(sel: Selection, name: str) -> list[str]:
    """For a selection by shape (a bare tensor file): the rule, and the chosen tensors that look like embedding
    tables with the ``--exclude`` that drops them; nothing for another selection."""
    if sel.rule != "shape":
        return []
    lines = [f"no --arch: the targets are the floating-point tensors with 2 or more dimensions of {name}, chosen "
             f"by shape and named by their keys (with a module: the weights that multiply an input)"]
    tables = [n for n in sel.names if sel.roles.get(n) == "embedding"]
    if tables:
        drop = " ".join(f"--exclude {shlex.quote(n)}" for n in tables)
        lines.append(f"{len(tables)} chosen tensor{'s look' if len(tables) > 1 else ' looks'} like embedding "
                     f"tables (not targets with a module): {', '.join(tables)}; {drop} drops them")
    return lines


ROLE_WORDS = {"bias": "biases"}


def coverage_text(cov: dict, verb: str = "distorted") -> str:
    """``distorted 7 tensors, 1,417,216 of 1,417,474 parameters (99.98%); clean: 258 biases`` and, for a selection
    not made by use, the rule and why (``; chosen by module type (a TorchScript program, ...)``)."""
    return "; ".join(coverage_parts(cov, verb))


def coverage_parts(cov: dict, verb: str = "distorted") -> list[str]:
    """The pieces of :func:`coverage_text`: what was distorted (``verb``), what stayed clean, the rule where not by
    use."""
    parts = [f"{verb} {cov['tensors']} tensor{'s' * (cov['tensors'] != 1)}, {cov['weights']:,} of "
             f"{cov['parameters']:,} parameters ({pct(cov['percent'])})"]
    clean = sorted(cov.get("clean", {}).items(), key=lambda kv: -kv[1]["weights"])
    if clean:
        parts.append("clean: " + ", ".join(f"{c['weights']:,} {ROLE_WORDS.get(r, f'{r} weights')}" for r, c in clean))
    if cov.get("rule", "use") != "use":
        parts.append(f"chosen by {cov['rule']}" + (f" ({cov['why']})" if cov.get("why") else ""))
    return parts
