"""The ``wrobust`` command line: parse, call the library, render. No logic of its own.

The ``wrobust`` group lives in :mod:`.app`; each command lives in its own module of this package and
registers itself on that group; every module here except ``app`` and ``options`` is imported at start-up. :func:`main` maps errors
to exit codes: 0 success or pass; 1 gate failed; 2 usage or input error; 3 internal error; 130
interrupted. Errors are one line on stderr; ``--debug`` (anywhere on the line) or ``WROBUST_DEBUG=1``
shows the traceback. wrobust's own warnings (:class:`..errors.WrobustWarning`) are one line each on stderr
(``wrobust: warning: ...``); other libraries' warnings (torch's pickle and deprecation warnings) are shown only
with ``--debug``. A ``PermissionError`` that no loader turned into a message is still a user error (exit 2).

Signals: SIGINT and SIGTERM exit 130 from every command at every stage (loading, training, evaluating,
writing), with one line ``wrobust: interrupted: ...`` (:func:`..engine.runs.signals.interruptible` is active
for the whole run). Errors of the machine (a full disk, a read-only file system) are one line naming the file,
exit 2, wherever they arise.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
import warnings

import click

from ..errors import (
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    RankFailed,
    WrobustError,
    WrobustWarning,
    permission_denied,
    storage_error,
)
from ..load.usercode import user_code_error
from .app import cli


def _pop_debug(args: list[str]) -> bool:
    end = args.index("--") if "--" in args else len(args)
    found = "--debug" in args[:end]
    if found:
        args[:] = [a for i, a in enumerate(args) if not (a == "--debug" and i < end)]
    return found


def _fail(message: str, code: int) -> int:
    click.echo(f"wrobust: error: {message}", err=True)
    return code


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``wrobust`` script; returns the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = _pop_debug(args) or os.environ.get("WROBUST_DEBUG", "") not in ("", "0")
    from ..engine.runs.signals import interruptible

    with warnings.catch_warnings(), interruptible():
        route_warnings(debug)
        return _run(args, debug)


QUIET_LOGGERS = ("torch.utils.cpp_extension",)  # their warnings reach the user only with --debug


def route_warnings(debug: bool) -> None:
    """wrobust's warnings: one line each on stderr, every time; every other warning only with ``--debug``."""
    warnings.simplefilter("default" if debug else "ignore")
    warnings.simplefilter("always", WrobustWarning)
    for name in QUIET_LOGGERS:  # libraries that log warnings of their own (torch.compile's C++ set-up)
        logging.getLogger(name).setLevel(logging.NOTSET if debug else logging.ERROR)

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, WrobustWarning):
            click.echo(f"wrobust: {category.label}: {message}", err=True)
        else:
            sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))

    warnings.showwarning = show


def _torchrun_rank() -> int:
    """This process's rank under torchrun (``RANK`` with ``WORLD_SIZE`` > 1), else 0."""
    try:
        return int(os.environ.get("RANK", "0")) if int(os.environ.get("WORLD_SIZE", "1")) > 1 else 0
    except ValueError:
        return 0


def _run(args: list[str], debug: bool) -> int:
    try:
        result = cli.main(args=args, prog_name="wrobust", standalone_mode=False)
        return result if isinstance(result, int) else EXIT_OK
    except click.exceptions.NoArgsIsHelpError as exc:
        click.echo(exc.ctx.get_help() if exc.ctx else str(exc), err=True)
        return EXIT_USAGE
    except click.ClickException as exc:
        _debug(debug)
        where = getattr(getattr(exc, "ctx", None), "command_path", "wrobust")
        return _fail(f"{exc.format_message()} (see '{where} --help')", EXIT_USAGE)
    except RankFailed as exc:  # under torchrun: rank 0 says it, for every rank
        _debug(debug)
        return exc.exit_code if exc.silent else _fail(str(exc), exc.exit_code)
    except WrobustError as exc:
        _debug(debug)
        rank = _torchrun_rank()  # under torchrun an error before the ranks meet comes from each: say whose
        return _fail(f"rank {rank}: {exc}" if rank > 0 else str(exc), exc.exit_code)
    except (KeyboardInterrupt, click.Abort) as exc:
        cause = exc.__cause__ if isinstance(exc, click.Abort) else exc
        if not getattr(cause, "silent", False):
            detail = getattr(cause, "message", "") or getattr(cause, "signal_name", "")
            click.echo(f"wrobust: interrupted{': ' + detail if detail else ''}", err=True)
        return EXIT_INTERRUPTED
    except PermissionError as exc:  # a file the user named, and no loader said which it is
        _debug(debug)
        return _fail(str(permission_denied(exc.filename or exc)), EXIT_USAGE)
    except BrokenPipeError:
        sys.stderr.close()  # the reader went away (| head): not an error
        return EXIT_OK
    except OSError as exc:  # the machine's storage refused a write no writer named: still one line, exit 2
        _debug(debug)
        problem = storage_error(exc.filename or "a file", exc)
        return _unexpected(exc, debug) if problem is None else _fail(str(problem), problem.exit_code)
    except Exception as exc:  # the user's own model code raised; else a bug: say so, briefly
        _debug(debug)
        return _unexpected(exc, debug)


def _unexpected(exc: BaseException, debug: bool) -> int:
    """The user's own model code raised (its one line), else a bug (``internal error``, exit 3)."""
    mine = user_code_error(exc)
    if mine is not None:
        return _fail(str(mine), mine.exit_code)
    hint = "" if debug else " (run with --debug for the traceback)"
    return _fail(f"internal error: {type(exc).__name__}: {exc}{hint}", EXIT_INTERNAL)


def _debug(debug: bool) -> None:
    if debug:
        traceback.print_exc()


def _load_commands() -> None:
    """Import every command module of this package; each registers its commands on ``cli``."""
    import importlib
    import pkgutil

    with warnings.catch_warnings():  # libraries warn on import too: only with --debug, as in main()
        route_warnings("--debug" in sys.argv or os.environ.get("WROBUST_DEBUG", "") not in ("", "0"))
        for info in pkgutil.iter_modules(__path__):
            if not info.name.startswith("_") and info.name not in ("app", "options"):
                importlib.import_module(f"{__name__}.{info.name}")


_load_commands()
