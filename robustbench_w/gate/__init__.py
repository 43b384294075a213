"""Robustness gates for CI (wing ``gate``): a policy in, verdicts and exit codes out.

In: a model and a policy (TOML: requirements at distortion x strength points). Out: a :class:`GateResult`
(one verdict per requirement, the measured rows) rendered as a table, JUnit XML, Markdown and JSON.
Files: :mod:`.policy` (reading and checking the policy, every problem at once), :mod:`.settings` (its keys
that are the options shared with ``sweep``), :mod:`.decide` (trials until each limit is decided),
:mod:`.verdict` (measuring and judging), :mod:`.report` (the table and the files).

The wing itself is callable: ``robustbench_w.gate(model, policy)`` runs :func:`.verdict.run_gate`.
"""

import sys
import types

from ..registry import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(__name__, {
    "policy": ("Policy", "Requirement", "load_policy"),
    "verdict": ("run_gate", "GateResult", "Verdict", "Check"),
    "report": ("render_gate", "write_gate_files"),
})


class _CallableWing(types.ModuleType):
    """The gate wing as a module that is also the gate: ``robustbench_w.gate(model, policy, ...)``."""

    def __call__(self, model, policy, baseline=None, **options):
        """Run :func:`.verdict.run_gate` (``policy`` a :class:`Policy` or the path of a policy file)."""
        from .verdict import run_gate

        return run_gate(model, policy, baseline, **options)


sys.modules[__name__].__class__ = _CallableWing
