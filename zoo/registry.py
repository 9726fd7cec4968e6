"""Plug-ins by name: merge methods, routers, candidate kinds and metrics are each a module that registers
itself in one of these, and everything else looks them up by name."""

from __future__ import annotations

from typing import Generic, TypeVar

T = TypeVar("T")


class UnknownName(KeyError, ValueError):
    """A name nothing registered (a ``KeyError`` for lookups, a ``ValueError`` for settings checks)."""

    def __str__(self) -> str:
        return str(self.args[0])


class Registry(dict[str, T], Generic[T]):
    """A dict of the registered ``what``s (e.g. "router") that refuses duplicates and names the known ones."""

    def __init__(self, what: str) -> None:
        super().__init__()
        self.what = what

    def add(self, name: str, entry: T) -> T:
        if name in self:
            raise ValueError(f"{self.what} {name!r} is registered twice")
        self[name] = entry
        return entry

    def known(self, name: str) -> T:
        """The entry ``name``; the error lists the registered names."""
        if name not in self:
            raise UnknownName(f"unknown {self.what} {name!r}; known {self.what}s: {sorted(self)}")
        return self[name]
