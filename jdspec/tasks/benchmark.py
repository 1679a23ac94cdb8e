"""A benchmark of lm-evaluation-harness's multiple-choice kind as one level: its config and the
`benchmark` task kind (documents -> requests -> acc / acc_norm, jdspec/tasks/choice.py)."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import BaseModel

from jdspec.data.benchmarks import ChoiceDoc, load_docs
from jdspec.eval.requests import LoglikelihoodRequest
from jdspec.results import TaskResult
from jdspec.tasks.choice import Place, choice_requests, score_choices
from jdspec.tasks.core import TASK_KINDS, TaskKind, seeded_sample

VERSION = 1
METRICS = ("accuracy", "accuracy_norm")


class BenchmarkLevel(BaseModel, extra="forbid", frozen=True):
    """Everything that decides one benchmark level's result; it goes into the cell key."""

    kind: Literal["benchmark"] = "benchmark"
    version: int = VERSION
    task: str
    source: str
    revision: str
    n_examples: int | None
    seed: int


def benchmark_level(
    task: str, source: str, revision: str, n_examples: int | None, seed: int
) -> BenchmarkLevel:
    return BenchmarkLevel(
        task=task, source=source, revision=revision, n_examples=n_examples, seed=seed
    )


@lru_cache(maxsize=4)
def _load(task: str, source: str, revision: str) -> tuple[ChoiceDoc, ...]:
    return load_docs(task, source, revision)


def select_docs(level: BenchmarkLevel) -> list[ChoiceDoc]:
    """A seeded sample of the documents, all of them for n_examples null."""
    docs = _load(level.task, level.source, level.revision)
    return seeded_sample(docs, level.n_examples, level.seed, f"documents in {level.task}")


def build(
    level: BenchmarkLevel,
) -> tuple[tuple[list[ChoiceDoc], list[list[Place]]], list[LoglikelihoodRequest]]:
    docs = select_docs(level)
    requests, places = choice_requests(docs)
    return (docs, places), requests


def score(
    level: BenchmarkLevel,
    prepared: tuple[list[ChoiceDoc], list[list[Place]]],
    requests: list[LoglikelihoodRequest],
    loglikelihoods: list[tuple[float, ...]],
) -> TaskResult:
    docs, places = prepared
    return score_choices(docs, requests, places, loglikelihoods)


TASK_KINDS.register("benchmark")(TaskKind(build, score))
