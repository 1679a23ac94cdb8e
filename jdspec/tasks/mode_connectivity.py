"""Appendix C: linear mode connectivity between dense and sparse transfer. For each task and
seed, the dense-transfer and the pruned-transfer models are joined by a straight line in weight
space, and the test loss and metric are measured along it: a loss barrier means the two
fine-tuned models sit in different basins."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from jdspec.tasks.core import Level, check_unique, register_setting
from jdspec.tasks.finetune import FinetuneSource, known_task, task_metrics

VERSION = 1


class ModeConnectivitySpectrum(FinetuneSource):
    setting: Literal["mode_connectivity"]
    tasks: tuple[str, ...] = Field(min_length=1, description="Fine-tuning tasks, easy first.")
    alpha_count: int = Field(
        11, ge=2, description="Evenly spaced points from the dense (0) to the pruned (1) model."
    )

    @field_validator("tasks")
    @classmethod
    def _known(cls, tasks: tuple[str, ...]) -> tuple[str, ...]:
        check_unique(list(tasks), "task")
        return tuple(known_task(task) for task in tasks)

    def task_names(self) -> tuple[str, ...]:
        return self.tasks

    def metrics(self) -> tuple[str, ...]:
        measured = task_metrics(self.tasks)
        return (*measured, *(f"barrier_{name}" for name in measured))

    def expand(self, n_examples: int | None, seed: int) -> list[Level]:
        return [
            Level(
                "mode_connectivity",
                task,
                None,
                self.level(
                    task,
                    n_examples,
                    kind="connectivity",
                    train_fraction=1.0,
                    alpha_count=self.alpha_count,
                ),
            )
            for task in self.tasks
        ]


register_setting("mode_connectivity", ModeConnectivitySpectrum, VERSION, job_kind="finetune")
