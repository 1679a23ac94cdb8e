"""Setting 1: data adequacy. Fine-tune on less and less of the training set; fewer examples is
harder. Each level is a seeded random subset, nested inside every larger one
(jdspec/tasks/finetune.py training_subset)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from jdspec.tasks.core import Level, check_unique, register_setting
from jdspec.tasks.finetune import FinetuneSource, known_task, task_metrics

VERSION = 1


class DataAdequacySpectrum(FinetuneSource):
    setting: Literal["data_adequacy"]
    task: str = Field(description="A fine-tuning task: sst2, rte, mnli, boolq, ...")
    fractions: tuple[float, ...] = Field(
        (1.0, 0.75, 0.5, 0.25, 0.1),
        min_length=1,
        description="Shares of the training pool; difficulty is 1 - fraction.",
    )

    @field_validator("task")
    @classmethod
    def _known(cls, task: str) -> str:
        return known_task(task)

    @field_validator("fractions")
    @classmethod
    def _fractions(cls, fractions: tuple[float, ...]) -> tuple[float, ...]:
        for fraction in fractions:
            if not 0 < fraction <= 1:
                raise ValueError(f"a fraction of the training set is in (0, 1], got {fraction}")
        check_unique([f"{fraction:g}" for fraction in fractions], "fraction")
        return fractions

    def task_names(self) -> tuple[str, ...]:
        return (self.task,)

    def metrics(self) -> tuple[str, ...]:
        return task_metrics([self.task])

    def expand(self, n_examples: int | None, seed: int) -> list[Level]:
        levels = sorted(self.fractions, reverse=True)  # easy (all the data) first
        return [
            Level(
                "data_adequacy",
                f"{self.task} {fraction:.0%}",
                round(1.0 - fraction, 12),
                self.level(self.task, n_examples, train_fraction=fraction),
            )
            for fraction in levels
        ]


register_setting("data_adequacy", DataAdequacySpectrum, VERSION, job_kind="finetune")
