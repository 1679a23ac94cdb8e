"""Job kinds: how a setting's levels become cells, and what runs a job of them.

A job is one compressed model and the cells run on it (jdspec/plan.py). Most settings evaluate:
each level is one cell at the evaluation seed, and the `evaluate` kind below loads the model,
compresses it once and answers every level's requests (jdspec/eval/job.py). A setting that does
something else registers with another kind, as the fine-tuning settings do
(jdspec/tasks/finetune.py). A kind gives

- `runs`, its planning rule: the cells one variant makes of one level (for fine-tuning, one per
  training seed and transfer mode);
- `execute`, its runner, which a backend calls with the job's pending cells and which yields
  plain records; it imports torch only when called, so planning stays torch-free;
- optionally `section`, a top-level spec section of its own (`finetuning:`), allowed only in
  specs of its settings, and `check`, problems of a loaded spec it cannot run (compressors it
  does not support).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pydantic import BaseModel

from jdspec.registry import Registry
from jdspec.results import CellResult, Progress, VariantResult

if TYPE_CHECKING:
    from jdspec.plan import Cell, Job
    from jdspec.spec import Spec
    from jdspec.tasks.core import Level

ProgressCallback = Callable[[Progress], None]
Runner = Callable[
    ["Job", "tuple[Cell, ...]", "ProgressCallback | None"], Iterator[VariantResult | CellResult]
]


@dataclass(frozen=True)
class LevelRun:
    """One cell a variant makes of a level: the level as it runs (with what the kind fills in),
    its seed, and what it adds to the compressor's curve family in reports (' (sparse)')."""

    level: Level
    seed: int
    family_suffix: str = ""


@dataclass(frozen=True)
class SpecSection:
    """A top-level spec section a job kind reads, e.g. `finetuning:`; absent means defaults."""

    name: str
    model: type[BaseModel]
    description: str


@dataclass(frozen=True)
class SpecProblem:
    """Something a job kind cannot run, at a field of the spec (its path as loaded)."""

    at: tuple[str | int, ...]
    message: str


def _no_problems(spec: Spec) -> list[SpecProblem]:
    return []


@dataclass(frozen=True)
class JobKind:
    """A registered job kind: its planning rule, its runner, its spec section and checks."""

    runs: Callable[[Spec, Level, bool], list[LevelRun]]  # (spec, level, is the dense baseline)
    execute: Runner
    section: SpecSection | None = None
    check: Callable[[Spec], list[SpecProblem]] = _no_problems


JOB_KINDS: Registry[JobKind] = Registry("job kind")


def register_job_kind(name: str, kind: JobKind) -> None:
    """Make `name` a kind settings can register with (jdspec/tasks/core.py register_setting)."""
    JOB_KINDS.register(name)(kind)


def execute_job(
    job: Job, cells: tuple[Cell, ...], on_progress: ProgressCallback | None = None
) -> Iterator[VariantResult | CellResult]:
    """What a backend runs for one job, anywhere (in-process, a Ray task): its kind's runner,
    which yields a record per variant measured and per cell, done or failed."""
    return JOB_KINDS.get(job.kind).execute(job, cells, on_progress)


def _once(spec: Spec, level: Level, dense: bool) -> list[LevelRun]:
    """An evaluated level is one cell, at the evaluation seed."""
    return [LevelRun(level, spec.evaluation.seed)]


def _evaluate(
    job: Job, cells: tuple[Cell, ...], on_progress: ProgressCallback | None
) -> Iterator[VariantResult | CellResult]:
    from jdspec.eval.job import evaluate_job  # torch loads in the worker, not the planner

    return evaluate_job(job, cells, on_progress)


register_job_kind("evaluate", JobKind(_once, _evaluate))
