"""Name -> object registries behind a decorator, shared by compressors, tasks and data sets."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Generic, TypeVar

from jdspec.errors import SpecError

T = TypeVar("T")


class Registry(Generic[T]):
    """Registered entries by name; a duplicate raises, an unknown name suggests the closest."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def add(entry: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = entry
            return entry

        return add

    def get(self, name: str) -> T:
        if name not in self._entries:
            raise SpecError(unknown_name_message(self.kind, name, self.names()))
        return self._entries[name]

    def names(self) -> list[str]:
        return sorted(self._entries)

    def items(self) -> list[tuple[str, T]]:
        return sorted(self._entries.items())


def unknown_name_message(kind: str, name: str, known: list[str]) -> str:
    """'unknown method 'wand'; known: magnitude, none, wanda (did you mean 'wanda'?)'."""
    close = difflib.get_close_matches(name, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown {kind} {name!r}; known: {', '.join(known)}{hint}"
