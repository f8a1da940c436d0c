"""The one kind of registry behind every part that plugs in: providers, detectors, import and export formats.

A `Registry` holds parts of one class by name. It fills itself on first use:
duologue's own parts first (a list, or every module of a package that defines
the named attribute), then the entry points of its group (third-party
packages). The rules are the same for every kind of part:

- a name is taken once: registering it again is an error unless `replace=True`
  (so a plugin cannot replace a built-in by accident; an entry point that
  repeats a name is recorded as broken, the first one kept);
- a plugin that fails to load is recorded, never raised: the other parts still
  work, and asking for the missing name says what went wrong (`why_missing`);
- an entry point may name a part, a list of parts, or a function returning
  either;
- `unregister(name)` removes a part (tests, programs).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterable, Iterator, Mapping
from importlib.metadata import entry_points
from typing import Generic, TypeVar

from .errors import DuologueError

T = TypeVar("T")


class Registry(Mapping[str, T], Generic[T]):
    """Parts of class `cls` by their `name`: built-ins, then the entry points of `group`, then registered ones."""

    def __init__(
        self,
        what: str,
        cls: type[T],
        group: str | None,
        builtins: Callable[[], Iterable[T]] = lambda: (),
        check: Callable[[T], None] | None = None,
    ):
        self.what = what  # "provider", "detector", "import format", …: how errors name a part
        self.cls = cls
        self.group = group
        self._builtins = builtins
        self._check = check
        self._parts: dict[str, T] = {}
        self._broken: dict[str, str] = {}  # entry point name -> why it could not be used
        self._loaded = False

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        for part in self._builtins():
            self.register(part)
        if self.group is None:
            return
        for ep in entry_points(group=self.group):
            try:
                for part in self._parts_of(ep.load()):
                    self.register(part)
            except Exception as err:  # one broken plugin must not take the other parts down
                self._broken[ep.name] = f"{self.what} plugin {ep.value} failed to load: {type(err).__name__}: {err}"

    def _parts_of(self, found: object) -> list[T]:
        if callable(found) and not isinstance(found, self.cls):
            found = found()
        parts = [found] if isinstance(found, self.cls) else list(found)  # type: ignore[call-overload]
        for part in parts:
            if not isinstance(part, self.cls):
                raise TypeError(f"{part!r} is not a duologue {self.cls.__name__}")
        return parts

    def register(self, part: T, *, replace: bool = False) -> None:
        self._load()
        name = part.name  # type: ignore[attr-defined]
        if self._check is not None:
            self._check(part)
        if name in self._parts and not replace:
            raise DuologueError(f"{self.what} '{name}' is already registered")
        self._parts[name] = part

    def unregister(self, name: str) -> None:
        self._load()
        self._parts.pop(name, None)

    def why_missing(self, name: str) -> str | None:
        """Why a part of this name is not here, when a plugin of that name failed to load."""
        self._load()
        return self._broken.get(name)

    @property
    def broken(self) -> dict[str, str]:
        """Every plugin that failed to load, and why."""
        self._load()
        return dict(self._broken)

    def __getitem__(self, name: str) -> T:
        self._load()
        return self._parts[name]

    def __iter__(self) -> Iterator[str]:
        self._load()
        return iter(list(self._parts))

    def __len__(self) -> int:
        self._load()
        return len(self._parts)


def package_parts(package: str, path: Iterable[str], attr: str, cls: type[T]) -> Callable[[], list[T]]:
    """Built-ins found by looking: each module of the package (by module name) defining `attr`, a `cls`."""

    def parts() -> list[T]:
        found = []
        for info in sorted(pkgutil.iter_modules(list(path)), key=lambda i: i.name):
            part = getattr(importlib.import_module(f"{package}.{info.name}"), attr, None)
            if isinstance(part, cls):
                found.append(part)
        return found

    return parts
