"""Registries by name, filled from the built-ins and from a Python entry-point group.

``alife_nas.strategies.STRATEGIES`` (group ``alife_nas.strategies``) and
``alife_nas.executors.EXECUTORS`` (group ``alife_nas.executors``) are :class:`Registry`
mappings. A package outside alife_nas adds to one by declaring an entry point, e.g. in its
``pyproject.toml``::

    [project.entry-points."alife_nas.strategies"]
    tiny = "my_package.tiny:TinyStrategy"

The entry points are read once, lazily: on the first lookup of a name that is not built in, or
the first time the registry is listed (``--strategy``'s choices are listed when the command line
is built). Importing alife_nas loads no plugin. A plugin that cannot be loaded or is not what the
registry holds is left out with a one-line warning naming it (logger ``alife_nas``; shown on
stderr when logging is not configured), never a traceback; a plugin never replaces a built-in or
an earlier plugin of the same name.

Pure Python: no torch, no numpy.
"""
from __future__ import annotations

import logging
import threading
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Callable, Generic, Iterator, Mapping, TypeVar

from alife_nas.genome import one_line

__all__ = ["Registry", "PluginError", "LOGGER"]

T = TypeVar("T")

#: Where plugin warnings go; with no logging configured, Python prints them on stderr, one line each.
LOGGER = logging.getLogger("alife_nas")


class PluginError(TypeError):
    """What a registry's check raises for an object that is not what it holds (one line)."""


class Registry(Mapping[str, T], Generic[T]):
    """A read-only mapping name -> object (a strategy class, an executor factory).

    ``kind`` names what it holds in messages (``strategy``), ``group`` is the entry-point group,
    ``check(name, obj)`` raises (any exception, one line) for an object the registry must not
    hold. Built-ins are added with :meth:`register`, where they are defined.
    """

    def __init__(self, kind: str, group: str, check: Callable[[str, Any], None] | None = None) -> None:
        self.kind = kind
        self.group = group
        self._check = check
        self._items: dict[str, T] = {}
        self._builtins: set[str] = set()
        self._loaded = False
        self._lock = threading.RLock()

    def register(self, name: str, obj: T) -> T:
        """Add a built-in (or, from Python, any object under a new name); returns ``obj``.

        Refuses a name already taken and an object the registry's check refuses.
        """
        with self._lock:
            if name in self._items:
                raise ValueError(f"a {self.kind} named {name!r} is already registered")
            if self._check is not None:
                self._check(name, obj)
            self._items[name] = obj
            if not self._loaded:
                self._builtins.add(name)
            return obj

    def load_plugins(self) -> None:
        """Read the entry-point group (once; later calls do nothing until :meth:`reload`)."""
        with self._lock:
            if self._loaded:
                return
            self._loaded = True
            for point in sorted(entry_points(group=self.group), key=lambda p: (p.name, p.value)):
                self._load(point)

    def _load(self, point: EntryPoint) -> None:
        where = _origin(point)
        if point.name in self._items:
            owner = "a built-in" if point.name in self._builtins else "another plugin's"
            LOGGER.warning("alife-nas: warning: %s plugin %r (%s) left out: the name is %s %s",
                           self.kind, point.name, where, owner, self.kind)
            return
        try:
            obj = point.load()
            if self._check is not None:
                self._check(point.name, obj)
        except Exception as exc:  # noqa: BLE001 - any failure of a plugin: left out, one line, no traceback
            LOGGER.warning("alife-nas: warning: %s plugin %r (%s) left out: %s", self.kind, point.name, where,
                           one_line(f"{type(exc).__name__}: {exc}"))
            return
        self._items[point.name] = obj

    def reload(self) -> None:
        """Forget the plugins (not the built-ins) and read the group again on the next lookup;
        for after a package was installed into a running interpreter (tests)."""
        with self._lock:
            self._items = {k: v for k, v in self._items.items() if k in self._builtins}
            self._loaded = False

    def builtins(self) -> tuple[str, ...]:
        """The built-in names, in registration order (no plugin is loaded)."""
        return tuple(k for k in self._items if k in self._builtins)

    def __getitem__(self, name: str) -> T:
        if name not in self._builtins:  # a built-in never needs the plugins read
            self.load_plugins()
        return self._items[name]

    def __iter__(self) -> Iterator[str]:
        self.load_plugins()
        return iter(list(self._items))

    def __len__(self) -> int:
        self.load_plugins()
        return len(self._items)

    def __repr__(self) -> str:
        return f"<{self.kind} registry {self.group!r}: {', '.join(self._items)}{'' if self._loaded else ', ...'}>"


def _origin(point: EntryPoint) -> str:
    """``name = module:attr`` and, where known, the distribution that declares it."""
    dist = getattr(point, "dist", None)
    text = f"{point.name} = {point.value}"
    if dist is not None:
        text += f", from {dist.metadata['Name']} {dist.version}"
    return text
