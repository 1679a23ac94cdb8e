"""Section 5: does fine-tuning bring back what pruning removed, across tasks of different
difficulty? Difficulty is the normalized human-model gap (human - model) / human, from a
published model score (the paper's Appendix B: RoBERTa-Large) or, without one, from the
study's own dense fine-tuned model, as setting 5 does."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from jdspec.tasks.core import Level, check_unique, register_setting
from jdspec.tasks.finetune import FinetuneSource, known_task, task_metrics

VERSION = 1


class TransferTask(BaseModel, extra="forbid", frozen=True):
    task: str = Field(description="A fine-tuning task: sst2, qnli, mnli, winogrande, ...")
    human: float = Field(gt=0, le=1, description="Human score on the task, as a fraction.")
    human_source: str = Field(min_length=1, description="Where the human score comes from.")
    model_score: float | None = Field(
        None, ge=0, le=1, description="A published fine-tuned model's score; null: measure it."
    )
    model_source: str | None = Field(None, description="Where model_score comes from.")
    difficulty: float | None = Field(None, description="Overrides the human-model gap.")

    @field_validator("task")
    @classmethod
    def _known(cls, task: str) -> str:
        return known_task(task)

    @model_validator(mode="after")
    def _sourced(self) -> TransferTask:
        if self.model_score is not None and not self.model_source:
            raise ValueError("model_score needs model_source: where the score was published")
        return self

    def fixed_difficulty(self) -> float | None:
        """The given difficulty, else the gap to the published score, else None (measured)."""
        if self.difficulty is not None:
            return self.difficulty
        if self.model_score is not None:
            return round((self.human - self.model_score) / self.human, 12)
        return None


class FinetuneHumanGapSpectrum(FinetuneSource):
    setting: Literal["finetune_human_gap"]
    levels: tuple[TransferTask, ...] = Field(min_length=1)

    @field_validator("levels")
    @classmethod
    def _distinct(cls, levels: tuple[TransferTask, ...]) -> tuple[TransferTask, ...]:
        check_unique([level.task for level in levels], "task")
        return levels

    def task_names(self) -> tuple[str, ...]:
        return tuple(level.task for level in self.levels)

    def metrics(self) -> tuple[str, ...]:
        return task_metrics([level.task for level in self.levels])

    def expand(self, n_examples: int | None, seed: int) -> list[Level]:
        return [
            Level(
                "finetune_human_gap",
                level.task,
                level.fixed_difficulty(),
                self.level(level.task, n_examples, train_fraction=1.0),
                human=None if level.fixed_difficulty() is not None else level.human,
            )
            for level in self.levels
        ]


register_setting("finetune_human_gap", FinetuneHumanGapSpectrum, VERSION, job_kind="finetune")
