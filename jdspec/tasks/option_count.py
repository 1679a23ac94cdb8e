"""Setting 2: the same questions with 4, 3 or 2 options; more options = harder."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, field_validator

from jdspec.tasks.core import Level, check_unique, default_difficulties, register_setting
from jdspec.tasks.mcq import METRICS, AnswerFormat, DatasetRef, mcq_level

VERSION = 1


class OptionCountLevel(BaseModel, extra="forbid", frozen=True):
    option_count: int = Field(ge=2, le=10, description="Options shown, gold included.")
    difficulty: float | None = Field(None, description="Defaults to option_count.")


class OptionCountSpectrum(BaseModel, extra="forbid", frozen=True):
    setting: Literal["option_count"]
    dataset: DatasetRef
    shots: int = Field(0, ge=0, description="Fixed demonstrations before each question.")
    answer_format: AnswerFormat = Field("letters", description="letters (MMLU style) or cloze")
    levels: tuple[OptionCountLevel, ...] = Field(min_length=1)

    @field_validator("levels")
    @classmethod
    def _distinct(cls, levels: tuple[OptionCountLevel, ...]) -> tuple[OptionCountLevel, ...]:
        check_unique([str(level.option_count) for level in levels], "option_count")
        return levels

    def metrics(self) -> tuple[str, ...]:
        return METRICS[self.answer_format]

    def expand(self, n_examples: int | None, seed: int) -> list[Level]:
        """One level per option count; every level draws the same questions."""
        pool = max(level.option_count for level in self.levels)
        difficulties = default_difficulties(
            [level.difficulty for level in self.levels],
            [float(level.option_count) for level in self.levels],
        )
        sampling = (n_examples, seed)
        return [
            Level(
                "option_count",
                f"{level.option_count} options",
                difficulty,
                mcq_level(
                    self.dataset, self.answer_format, sampling, self.shots, level.option_count, pool
                ),
            )
            for level, difficulty in zip(self.levels, difficulties, strict=True)
        ]


register_setting("option_count", OptionCountSpectrum, VERSION)
