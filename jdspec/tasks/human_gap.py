"""Setting 5: difficulty across tasks, measured by how far the dense model falls short of people.

difficulty = (human - dense) / human: the normalized human-model gap, with the dense model's
own score from the same study (so it is known only after the dense cells ran, and the report
computes it per model and metric) and human scores from the spec's table, each with its
source. Tasks are scored as lm-evaluation-harness's multiple_choice (jdspec/tasks/choice.py).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, field_validator

from jdspec.data.benchmarks import BENCHMARKS
from jdspec.registry import unknown_name_message
from jdspec.tasks.benchmark import METRICS, benchmark_level
from jdspec.tasks.core import DataSource, Level, check_unique, register_setting

VERSION = 1


class HumanGapLevel(BaseModel, extra="forbid", frozen=True):
    task: str = Field(description="A benchmark: piqa, hellaswag, openbookqa, winogrande, ...")
    human: float = Field(gt=0, le=1, description="Human accuracy on the task, as a fraction.")
    human_source: str = Field(min_length=1, description="Where the human score comes from.")
    difficulty: float | None = Field(
        None, description="Overrides the measured gap (human - dense) / human."
    )

    @field_validator("task")
    @classmethod
    def _known(cls, task: str) -> str:
        if task not in BENCHMARKS.names():
            raise ValueError(unknown_name_message("benchmark", task, BENCHMARKS.names()))
        return task


class HumanGapSpectrum(DataSource):
    setting: Literal["human_gap"]
    levels: tuple[HumanGapLevel, ...] = Field(min_length=1)

    @field_validator("levels")
    @classmethod
    def _distinct(cls, levels: tuple[HumanGapLevel, ...]) -> tuple[HumanGapLevel, ...]:
        check_unique([level.task for level in levels], "task")
        return levels

    def metrics(self) -> tuple[str, ...]:
        return METRICS

    def expand(self, n_examples: int | None, seed: int) -> list[Level]:
        revision = self.resolved_revision()
        return [
            Level(
                "human_gap",
                level.task,
                level.difficulty,
                benchmark_level(level.task, self.source, revision, n_examples, seed),
                human=None if level.difficulty is not None else level.human,
            )
            for level in self.levels
        ]


register_setting("human_gap", HumanGapSpectrum, VERSION)
