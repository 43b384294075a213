"""The ``wrobust`` click group that every command module registers on, and the one rule every command's paths
follow: before any work, no two outputs are one file and no output is one of the inputs (:class:`Command`)."""

from __future__ import annotations

from pathlib import Path

import click

from .. import __version__

# The parameters that name files, whatever the command: what it writes, and what it reads.
OUTPUT_PARAMS = {"outputs": "-o", "junit": "--junit", "summary": "--summary", "log": "--log"}
INPUT_PARAMS = {"model": "MODEL", "results": "RESULTS", "files": "FILES", "policy": "--policy",
                "baseline": "--baseline", "dataset": "--dataset"}


def named_paths(params: dict, names: dict[str, str]) -> list[tuple[str, Path]]:
    """``(option, path)`` for every file-naming parameter given; ``tensors:FILE``-like values by their file."""
    found = []
    for name, option in names.items():
        values = params.get(name)
        for value in values if isinstance(values, (tuple, list)) else [values]:
            if isinstance(value, str):
                value = Path(value.partition(":")[2] if ":" in value else value)
                if not value.exists():
                    continue  # builtin:NAME, a dataset name: not a file
            if isinstance(value, Path):
                found.append((option, value))
    return found


class Command(click.Command):
    """A command whose file parameters are checked against each other before it runs (``load.writing``)."""

    def invoke(self, ctx: click.Context):
        from ..load.writing import check_distinct

        check_distinct(named_paths(ctx.params, OUTPUT_PARAMS), named_paths(ctx.params, INPUT_PARAMS))
        return super().invoke(ctx)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "-V", "--version", prog_name="wrobust")
def cli() -> None:
    """How robust is a trained network to distortions of its weights, and how few bits does it need?

    \b
    Start with:   wrobust demo
    Your model:   wrobust sweep model.pt -d noise -o results.csv
    What exists:  wrobust list distortions

    Add --debug anywhere to see the traceback of an error.
    """


cli.command_class = Command
