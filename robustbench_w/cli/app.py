"""The ``wrobust`` click group that every command module registers on."""

from __future__ import annotations

import click

from .. import __version__


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
