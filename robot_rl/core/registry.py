"""Decorator registries with entry-point discovery: plug-ins register by name, never by if/elif."""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Generic, TypeVar

from robot_rl.core.errors import RegistryError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to factories of one kind; names missing locally are looked up as entry points."""

    def __init__(self, kind: str, entry_point_group: str | None = None) -> None:
        self.kind = kind
        self.entry_point_group = entry_point_group
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: `@registry.register("reach")` above a class or function."""

        def decorate(obj: T) -> T:
            existing = self._items.get(name)
            if existing is not None and existing is not obj:
                raise RegistryError(f"{self.kind} {name!r} is registered twice")
            self._items[name] = obj
            return obj

        return decorate

    def _load_entry_point(self, name: str) -> None:
        if self.entry_point_group is None:
            return
        for ep in entry_points(group=self.entry_point_group):
            if ep.name == name:
                obj = ep.load()
                self._items.setdefault(name, obj)
                return

    def get(self, name: str) -> T:
        if name not in self._items:
            self._load_entry_point(name)
        try:
            return self._items[name]
        except KeyError:
            known = ", ".join(self.names()) or "none"
            raise RegistryError(f"unknown {self.kind} {name!r}; known: {known}") from None

    def names(self) -> list[str]:
        found = set(self._items)
        if self.entry_point_group is not None:
            found.update(ep.name for ep in entry_points(group=self.entry_point_group))
        return sorted(found)

    def __contains__(self, name: str) -> bool:
        return name in self.names()
