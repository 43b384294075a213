"""Errors a user can cause. The CLI turns each into one line on stderr and an exit code.

Everything a user can get wrong (a path, a name, a strength, a file's content) raises a subclass of
:class:`WrobustError`; anything else is a bug and exits 3.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1  # a gate failed
EXIT_USAGE = 2  # usage or input error
EXIT_INTERNAL = 3
EXIT_INTERRUPTED = 130


class WrobustError(Exception):
    """An error caused by the user's input; reported in one line, exit code 2."""

    exit_code = EXIT_USAGE


class UnknownNameError(WrobustError, KeyError):
    """A name that is not registered. Also a ``KeyError``, as a registry lookup should be."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class InvalidValueError(WrobustError, ValueError):
    """A value out of its valid range or of the wrong form (a strength, an option, a size)."""


class MissingValueError(InvalidValueError):
    """A value the run needs and was not given. ``option`` names it as a setting (``input_shape``) and ``ways``
    say how to give it (``--input-shape (for example 3,32,32)``), so that a caller that also reads settings from
    elsewhere (a gate's policy) adds its own way to the same one-line message (:meth:`adding`)."""

    def __init__(self, need: str, option: str, ways: list[str], why: str = ""):
        self.need, self.option, self.ways, self.why = need, option, list(ways), why
        super().__init__(f"{need}: pass " + " or ".join(self.ways) + (f"; {why}" if why else ""))

    def adding(self, way: str) -> MissingValueError:
        return MissingValueError(self.need, self.option, [*self.ways, way], self.why)


class InputFileError(WrobustError, OSError):
    """A file that is missing, unreadable, corrupt or of the wrong content."""


class UntrustedCheckpointError(InputFileError):
    """The file holds pickled Python objects; loading them needs ``--trust-checkpoint``."""


class PermissionDeniedError(InputFileError):
    """A file or folder the user named cannot be read (or written) with the user's permissions."""


class EnvironmentProblem(WrobustError, OSError):
    """The machine's problem, not the input's: a full disk, a read-only file or file system, no C++ compiler,
    not enough memory for the size asked for. One line naming the file or the resource, exit code 2."""


class UserCodeError(WrobustError):
    """The user's own code (an ``--arch`` callable, the class of a trusted pickle) raised while it ran."""


class WrobustWarning(UserWarning):
    """Something about the user's input that the results depend on (a broken model, a --limit larger than the
    set, an option that does not apply). The CLI prints it as one line, ``wrobust: warning: ...``."""

    label = "warning"


class WrobustNote(WrobustWarning):
    """A harmless adjustment made to the input, said once (``wrobust: note: ...``)."""

    label = "note"


def permission_denied(path: object, what: str = "") -> PermissionDeniedError:
    """The one-line error for a path the user may not read: ``PATH: permission denied (WHAT)``."""
    return PermissionDeniedError(f"{path}: permission denied" + (f" ({what})" if what else ""))
# errno values of the machine's storage that a write can meet: full disk, quota, read-only file system, I/O error
STORAGE_ERRNOS = {"ENOSPC": "no space left on device", "EDQUOT": "disk quota exceeded",
                  "EROFS": "read-only file system", "EIO": "input/output error", "EFBIG": "file too large"}


def storage_error(path: object, exc: OSError, what: str = "") -> EnvironmentProblem | None:
    """The one-line error for a write to ``path`` that the storage refused (disk full, quota, read-only file
    system, I/O error): ``PATH: cannot write WHAT: no space left on device``; None for any other OSError."""
    import errno

    for name, text in STORAGE_ERRNOS.items():
        if exc.errno == getattr(errno, name, None):
            return EnvironmentProblem(f"{path}: cannot write {what or 'it'}: {text}")
    return None


def write_protected(path: object) -> EnvironmentProblem:
    """An output file the user made read-only: never replaced (as ``cp`` and ``pip`` refuse)."""
    return EnvironmentProblem(f"{path}: the file is write-protected (read-only); make it writable "
                              "(chmod u+w) or choose another output")


class MissingOptionsError(InputFileError):
    """A model file that needs options the command was not given. ``needs`` lists every one of them, so that a
    caller that knows of more (``--dataset``) adds them to the same one-line message."""

    def __init__(self, subject: str, needs: list[str]):
        self.subject, self.needs = subject, list(needs)
        super().__init__(f"{subject} needs " + ", and ".join(self.needs))

    def adding(self, need: str) -> MissingOptionsError:
        return MissingOptionsError(self.subject, [*self.needs, need])


def first_line(exc: BaseException, empty: str | None = None, *, whole: bool = False, limit: int = 200) -> str:
    """The first non-empty line of an exception's message (``whole``: all its lines joined into one), for one-line
    errors; ``empty`` (default: the exception's type name) when it has none. Longer than ``limit`` characters, it
    ends at its last full sentence within them (else at a word, with ``...``): never mid-sentence unmarked."""
    lines = [" ".join(line.split()) for line in str(exc).strip().splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__ if empty is None else empty
    return shorten(" ".join(lines) if whole else lines[0], limit)


def shorten(text: str, limit: int) -> str:
    """``text`` cut to its last sentence that ends within ``limit`` characters, else to a word, marked ``...``."""
    if len(text) <= limit:
        return text
    head = text[:limit]
    end = max(head.rfind(". "), head.rfind("! "), head.rfind("? "), head.rfind("; "))
    if end >= limit // 3:
        return head[:end + 1].rstrip(";") + " ..."
    return head.rsplit(" ", 1)[0] + " ..."


class RankFailed(WrobustError):
    """A process of a distributed run (torchrun) failed. Every process raises it with that process's one-line
    error and exit code; only rank 0 prints it (``silent`` on the others)."""

    def __init__(self, message: str, exit_code: int = EXIT_USAGE, silent: bool = False):
        super().__init__(message)
        self.exit_code = exit_code
        self.silent = silent
