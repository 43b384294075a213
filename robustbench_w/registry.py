"""A small typed registry, used for distortions, datasets and architectures; and the lazy export map of
the package's wings.

Names are lower-cased on the way in and on the way out. Registering a name twice raises ``ValueError``,
an entry of the wrong type raises ``TypeError``, and an unknown name raises :class:`UnknownNameError`
(a ``KeyError``) that names the closest registered names.
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

from .errors import UnknownNameError, WrobustWarning

T = TypeVar("T")


def close_matches(name: str, candidates: Iterable[str], n: int = 3) -> list[str]:
    """Registered names that look like ``name`` (typos, prefixes), best first."""
    candidates = sorted(set(candidates))
    found = difflib.get_close_matches(name, candidates, n=n, cutoff=0.6)
    found += [c for c in candidates if c.startswith(name) and c not in found]
    return found[:n]


class Registry(Generic[T]):
    """Maps lower-case names (and aliases) to entries of one type."""

    def __init__(self, kind: str, entry_type: type | tuple[type, ...]):
        self.kind = kind
        self.entry_type = entry_type
        self._entries: dict[str, T] = {}
        self._aliases: dict[str, str] = {}
        self._loader: Callable[[], None] | None = None

    def set_loader(self, loader: Callable[[], None]) -> None:
        """A function run once before the first lookup (for example to load plug-ins)."""
        self._loader = loader

    def _load(self) -> None:
        loader, self._loader = self._loader, None
        if loader is not None:
            loader()

    def register(self, name: str, entry: T, aliases: Iterable[str] = ()) -> T:
        if not isinstance(entry, self.entry_type):
            raise TypeError(f"a {self.kind} entry must be {self.entry_type}, not {type(entry).__name__}")
        key = name.lower()
        keys = [key, *(a.lower() for a in aliases)]
        taken = [k for k in keys if k in self._entries or k in self._aliases]
        if taken or len(set(keys)) != len(keys):
            raise ValueError(f"{self.kind} name already registered: {', '.join(taken) or key}")
        self._entries[key] = entry
        for alias in keys[1:]:
            self._aliases[alias] = key
        return entry

    def resolve(self, name: str) -> str:
        """The canonical name for ``name`` or one of its aliases."""
        self._load()
        key = name.strip().lower()
        key = self._aliases.get(key, key)
        if key not in self._entries:
            raise UnknownNameError(self._unknown_message(name))
        return key

    def get(self, name: str) -> T:
        return self._entries[self.resolve(name)]

    def _unknown_message(self, name: str) -> str:
        close = close_matches(name.lower(), [*self._entries, *self._aliases])
        hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        return f"unknown {self.kind} {name!r}{hint} (available: {', '.join(self.names())})"

    def names(self, include: str | Iterable[str] | None = None, exclude: str | Iterable[str] | None = None) -> list[str]:
        """Canonical names, sorted, filtered by shell-style wildcards."""
        self._load()
        names = sorted(self._entries)
        if include is not None:
            pats = [include] if isinstance(include, str) else list(include)
            names = [n for n in names if any(fnmatch.fnmatch(n, p.lower()) for p in pats)]
        if exclude is not None:
            pats = [exclude] if isinstance(exclude, str) else list(exclude)
            names = [n for n in names if not any(fnmatch.fnmatch(n, p.lower()) for p in pats)]
        return names

    def aliases_of(self, name: str) -> list[str]:
        key = self.resolve(name)
        return sorted(a for a, k in self._aliases.items() if k == key)

    def __contains__(self, name: object) -> bool:
        self._load()
        if not isinstance(name, str):
            return False
        key = name.lower()
        return key in self._entries or key in self._aliases

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        self._load()
        return len(self._entries)

    def load_entry_points(self, group: str) -> None:
        """Set the loader to import the plug-ins of entry-point ``group``: an entry point names a module that
        registers on import, or an entry of this registry's type (registered under ``entry.info.name`` and
        ``entry.info.aliases``). A broken plug-in is a one-line warning, never a failure of the tool."""

        def load() -> None:
            import warnings
            from importlib.metadata import entry_points

            for ep in entry_points(group=group):
                try:
                    obj = ep.load()
                    if isinstance(obj, self.entry_type):
                        self.register(obj.info.name, obj, aliases=obj.info.aliases)
                except Exception as exc:  # a broken plug-in must not break the tool
                    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
                    warnings.warn(f"{self.kind} plug-in {ep.name!r} failed to load: {first}", WrobustWarning,
                                  stacklevel=2)

        self.set_loader(load)

    @contextmanager
    def isolated(self) -> Iterator[Registry[T]]:
        """Let a test register entries; everything registered inside is removed afterwards."""
        self._load()
        entries, aliases = dict(self._entries), dict(self._aliases)
        try:
            yield self
        finally:
            self._entries, self._aliases = entries, aliases


class LazyModule:
    """A module imported at its first attribute use. ``torch = LazyModule("torch")`` lets a module call
    ``torch.where(...)`` in its functions without importing torch when it is itself imported: the distortion
    families register their metadata at import, and ``wrobust list distortions`` reads it without torch. A
    use at module level (a constant built from ``torch.float32``) imports it: keep those in functions."""

    def __init__(self, name: str):
        self._lazy_name = name
        self._lazy_module = None

    def __getattr__(self, attr: str) -> object:
        if self._lazy_module is None:
            self._lazy_module = importlib.import_module(self._lazy_name)
        return getattr(self._lazy_module, attr)

    def __repr__(self) -> str:
        return f"<lazy module {self._lazy_name!r}>"


def lazy_exports(package: str, exports: dict[str, tuple[str, ...]]):
    """``(__all__, __getattr__, __dir__)`` for a package that exports the names in ``exports`` (submodule,
    relative to ``package`` -> its public names) and imports a submodule only when one of its names is first
    used.

    Wings import nothing at import time: ``import robustbench_w`` and the command line's start-up stay
    free of torch and pandas, and two wings on one level may use each other's files without an import
    cycle through their ``__init__``. A name equal to its submodule's name (``"gate": ("gate",)``) stands
    for the submodule itself.
    """
    where = {name: module for module, names in exports.items() for name in names}

    def __getattr__(name: str) -> object:
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module = importlib.import_module(f"{package}.{where[name]}")
        return module if where[name] == name else getattr(module, name)

    def __dir__() -> list[str]:
        import sys

        return sorted(set(where) | set(vars(sys.modules[package])))

    return sorted(where), __getattr__, __dir__
