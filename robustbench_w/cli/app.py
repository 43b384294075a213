"""The ``wrobust`` click group that every command module registers on, and the one rule every command's paths
follow: before any work, no two outputs are one file and no output is one of the inputs; no option that takes one
value is given twice, no file name is empty; ``--help`` may group the options (:class:`Command`)."""

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


# what to do instead of repeating an option that takes one value (the general advice follows otherwise)
REPEAT_HINTS = {
    "strengths": "to give each distortion its own grid, write it in its spec: "
                 "-d noise:sigma=0/0.01/0.05 -d quantize:bits=8/4 (see: wrobust list distortions)",
}


class Command(click.Command):
    """A command whose file parameters are checked against each other before it runs (``load.writing``), that refuses an option given twice where it takes one value (click would silently keep the
    last), and whose ``--help`` may group its options: ``sections`` is a list of ``(title, [param names])``,
    options named in no section are listed under "Other options"; ``examples`` end the help."""

    def __init__(self, *args, sections: list[tuple[str, list[str]]] | None = None,
                 examples: list[str] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.sections, self.examples = sections or [], examples or []

    def invoke(self, ctx: click.Context):
        from ..load.writing import check_distinct

        check_distinct(named_paths(ctx.params, OUTPUT_PARAMS), named_paths(ctx.params, INPUT_PARAMS))
        return super().invoke(ctx)

    def make_parser(self, ctx: click.Context):
        parser = super().make_parser(ctx)
        parse = parser.parse_args

        def parse_once(args: list[str]):
            opts, rest, order = parse(args)
            check_repeats(order, ctx)
            check_empty_paths(opts, self.get_params(ctx), ctx)
            return opts, rest, order

        parser.parse_args = parse_once
        return parser

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        if not self.sections:
            return super().format_options(ctx, formatter)
        records = {p.name: p.get_help_record(ctx) for p in self.get_params(ctx) if isinstance(p, click.Option)}
        placed: set[str] = set()
        for title, names in [*self.sections, ("Other options", list(records))]:
            rows = [records[n] for n in names if n not in placed and records.get(n)]
            placed.update(names)
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows)

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        super().format_epilog(ctx, formatter)
        if self.examples:
            with formatter.section("Examples"):
                for line in self.examples:  # as written: a command line is not rewrapped
                    formatter.write(f"{'':>{formatter.current_indent}}{line}\n")


def check_repeats(order: list[click.Parameter], ctx: click.Context) -> None:
    """A value option (not ``multiple``, not a flag or count) seen twice on the command line is a usage error."""
    seen: set[str] = set()
    for param in order:
        single = isinstance(param, click.Option) and not (param.multiple or param.count or param.is_flag)
        if single and param.name in seen:
            opts = "/".join(param.opts)
            hint = REPEAT_HINTS.get(param.name, "give it once")
            raise click.UsageError(f"{opts} given more than once (only one would count): {hint}", ctx)
        seen.add(param.name)


PATH_ARGUMENTS = ("model", "results", "files", "inputs")  # arguments that name files without a click.Path type


def check_empty_paths(opts: dict, params: list[click.Parameter], ctx: click.Context) -> None:
    """An empty file name (``-o ''``, ``MODEL ''``) is a usage error: click and pathlib would read it as ``.``."""
    for param in params:
        if not (isinstance(param.type, click.Path) or param.name in PATH_ARGUMENTS) or param.name not in opts:
            continue
        value = opts[param.name]
        values = value if isinstance(value, (list, tuple)) else [value]
        if any(isinstance(v, str) and not v.strip() for v in values):
            name = "/".join(param.opts) if isinstance(param, click.Option) else param.human_readable_name
            raise click.UsageError(f"{name}: an empty file name (give a path)", ctx)



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
