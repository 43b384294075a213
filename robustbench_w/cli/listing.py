"""``wrobust list``: what is registered.

Each kind imports only its own registry, when it is listed: ``wrobust list distortions`` needs neither torch
nor pandas (the distortion families import torch when a distortion is applied, not when it is registered).
"""

from __future__ import annotations

import warnings

import click

from ..errors import WrobustWarning
from .app import cli

KINDS = ("distortions", "datasets", "archs", "models", "metrics")


@cli.command("list")
@click.argument("kind", type=click.Choice(KINDS), default="distortions")
@click.option("--include", default=None, metavar="GLOB", help="Only names matching this wildcard.")
@click.option("--exclude", default=None, metavar="GLOB", help="Leave out names matching this wildcard.")
def list_cmd(kind: str, include: str | None, exclude: str | None) -> None:
    """List registered distortions, datasets, architectures, built-in models or metrics."""
    from ..report.console import stdout_console

    tables = {"distortions": _distortions, "datasets": _datasets, "archs": _archs, "models": _models,
              "metrics": _metrics}
    table = tables[kind](include, exclude)
    if table.row_count == 0:  # only filters can empty a list: say so rather than print an empty table
        filters = " ".join(f"--{k} {v!r}" for k, v in (("include", include), ("exclude", exclude)) if v is not None)
        warnings.warn(f"no {kind} match {filters} (wrobust list {kind} shows them all)", WrobustWarning, stacklevel=1)
        return
    stdout_console().print(table)


def _distortions(include, exclude):
    from rich.markup import escape
    from rich.table import Table

    from ..distortions import list_distortions

    table = Table("name", "aliases", "strength", "default grid", "formula",
                  title="distortions (spec: NAME[:scale=max|mean|std,granularity=tensor|channel,STRENGTH=X]; a grid of "
                        "its own: STRENGTH=X/Y/Z, as in noise:sigma=0/0.01/0.05)", title_justify="left",
                  caption=CHAINS, caption_justify="left")
    for info in list_distortions(include, exclude):
        own = "; options: " + ", ".join(o.describe() for o in info.options) if info.options else ""
        table.add_row(*map(escape, (
            info.name, ", ".join(info.aliases) or "-", _strength(info),
            ", ".join(f"{g:g}" for g in info.grid) or "-", info.formula + (" (random)" if info.random else "") + own,
        )))
    return table


CHAINS = ("Chains: A+B[+...] applies the parts in order to the same tensor (quantize:bits=4+pcm: quantized, then "
          "PCM). The strength (-s, or the grid) goes to the last part that takes one; the others give theirs in "
          "the spec. See docs/hardware.md.")


def _metrics(include, exclude):
    from rich.markup import escape
    from rich.table import Table

    from ..engine.passes.metrics import list_metrics

    table = Table("name", "kind", "needs", "better", "clean model", "formula",
                  title="metrics (--metric NAME; rows get one column per metric)", title_justify="left")
    for info in list_metrics(include, exclude):
        needs = {"classes": "class labels", "targets": "numeric labels"}.get(info.labels, "no labels")
        ident = "-" if info.identity is None else f"{info.identity:g}"
        table.add_row(*map(escape, (info.name + (f" ({', '.join(info.aliases)})" if info.aliases else ""), info.kind,
                                    needs, "higher" if info.higher_is_better else "lower", ident, info.formula)))
    return table


def _strength(info) -> str:
    if info.strength is None:
        return "-"
    ident = "" if info.identity is None else f"; identity {info.identity:g}"
    return f"{info.strength} in {info.valid}{ident}"


def _datasets(include, exclude):
    from rich.markup import escape
    from rich.table import Table

    from ..datasets.base import DATASETS

    table = Table("name", "description", title="datasets", title_justify="left")
    for name in DATASETS.names(include, exclude):
        entry = DATASETS.get(name)
        table.add_row(escape(entry.usage), escape(entry.description))
    return table


def _archs(include, exclude):
    from rich.markup import escape
    from rich.table import Table
    from torchvision import models as tvm

    from ..load.architectures import ARCHS

    table = Table("name", "description", title="architectures", title_justify="left")
    for name in ARCHS.names(include, exclude):
        table.add_row(name, escape(ARCHS.get(name).description))
    names = tvm.list_models(module=tvm, include=include, exclude=exclude)
    if include is not None:  # a filter lists the torchvision models it matches, by name
        for name in names:
            table.add_row(name, "torchvision classification model (built without weights; with --num-classes)")
        return table
    table.add_row("<torchvision name>", escape(f"any of torchvision's {len(names)} classification models by name "
                                               f"({', '.join(names[:4])}, ...), with --num-classes"))
    table.add_row("timm:<name>", escape("any timm architecture (optional extra [timm]), built without pretrained weights"))
    table.add_row("<file.py:fn>", "your own code: package.module:callable or path/to/file.py:callable")
    return table


def _models(include, exclude):
    import fnmatch

    from rich.table import Table

    from ..load.checkpoints import builtin_names

    table = Table("model", title="built-in models", title_justify="left")
    for name in builtin_names():
        if (include is None or fnmatch.fnmatch(name, include)) and not (exclude and fnmatch.fnmatch(name, exclude)):
            table.add_row(f"builtin:{name}")
    return table
