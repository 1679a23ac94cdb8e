"""What every study setting shares: the registry of spectra and the Level record."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from jdspec.registry import Registry


@dataclass(frozen=True)
class Level:
    """One point on a spectrum: a label for people, a difficulty for statistics, and `config`,
    everything that changes the result (it goes into the cell key)."""

    setting: str
    label: str
    difficulty: float
    config: BaseModel


@dataclass(frozen=True)
class Setting:
    """A registered study setting: the spectrum model a spec's `spectrum:` validates against."""

    spectrum_model: type[BaseModel]
    version: int


SETTINGS: Registry[Setting] = Registry("study setting")


def register_setting(name: str, spectrum_model: type[BaseModel], version: int) -> None:
    """Make `setting: name` valid in specs."""
    SETTINGS.register(name)(Setting(spectrum_model, version))


def default_difficulties(explicit: list[float | None], natural: list[float]) -> list[float]:
    """The spec's difficulties when it gives them all, else the setting's natural order."""
    if all(value is not None for value in explicit):
        return [float(value) for value in explicit]  # type: ignore[arg-type]
    if any(value is not None for value in explicit):
        raise ValueError("give difficulty for every level or for none")
    return natural


def check_unique(labels: list[str], what: str) -> Any:
    """Levels of one spectrum must differ, or two cells would share one key."""
    duplicates = sorted({label for label in labels if labels.count(label) > 1})
    if duplicates:
        raise ValueError(f"{what} repeated: {', '.join(duplicates)}")
