"""Setting 4: in-context learning with 0..5 demonstrations; fewer shots = harder."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, field_validator

from jdspec.tasks.core import Level, check_unique, default_difficulties, register_setting
from jdspec.tasks.mcq import METRICS, AnswerFormat, DatasetRef, mcq_level

VERSION = 1


class KShotLevel(BaseModel, extra="forbid", frozen=True):
    shots: int = Field(ge=0, le=5, description="Demonstrations (MMLU's dev split holds 5).")
    difficulty: float | None = Field(None, description="Defaults to (most shots - shots).")


class KShotSpectrum(BaseModel, extra="forbid", frozen=True):
    setting: Literal["k_shot"]
    dataset: DatasetRef
    option_count: int = Field(4, ge=2, le=10, description="Options shown for every question.")
    answer_format: AnswerFormat = Field("letters", description="letters (MMLU style) or cloze")
    levels: tuple[KShotLevel, ...] = Field(min_length=1)

    @field_validator("levels")
    @classmethod
    def _distinct(cls, levels: tuple[KShotLevel, ...]) -> tuple[KShotLevel, ...]:
        check_unique([str(level.shots) for level in levels], "shots")
        return levels

    def metrics(self) -> tuple[str, ...]:
        return METRICS[self.answer_format]

    def expand(self, n_examples: int | None, seed: int) -> list[Level]:
        """One level per shot count, on the same questions."""
        most = max(level.shots for level in self.levels)
        difficulties = default_difficulties(
            [level.difficulty for level in self.levels],
            [float(most - level.shots) for level in self.levels],
        )
        sampling = (n_examples, seed)
        return [
            Level(
                "k_shot",
                f"{level.shots}-shot",
                difficulty,
                mcq_level(
                    self.dataset,
                    self.answer_format,
                    sampling,
                    level.shots,
                    self.option_count,
                    self.option_count,
                ),
            )
            for level, difficulty in zip(self.levels, difficulties, strict=True)
        ]


register_setting("k_shot", KShotSpectrum, VERSION)
