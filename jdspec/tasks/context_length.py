"""Setting 3: retrieval-augmented QA given less and less of the passage; closed book is hardest.

Each level keeps a share of the passage's words around the answer, cut at sentence
boundaries so the answer is always inside (jdspec/data/context_cut.py). Every level asks the
same questions: those whose passage holds an answer alias.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from jdspec.tasks.core import Level, check_unique, default_difficulties, register_setting
from jdspec.tasks.qa import METRICS, Generating, QADatasetRef, qa_level

VERSION = 1
CLOSED_BOOK_DIFFICULTY = 100.0


class ContextLevel(BaseModel, extra="forbid", frozen=True):
    closed_book: bool = Field(False, description="No passage at all: the hardest level.")
    context_percent: float | None = Field(
        None, gt=0, le=100, description="Share of the passage's words kept around the answer."
    )
    difficulty: float | None = Field(
        None, description="Defaults to 100 - context_percent; closed book is 100."
    )

    @model_validator(mode="after")
    def _one_kind(self) -> ContextLevel:
        if self.closed_book == (self.context_percent is not None):
            raise ValueError("give either closed_book: true or context_percent, not both")
        return self

    def label(self) -> str:
        return "closed book" if self.closed_book else f"{self.context_percent:g}% context"

    def natural_difficulty(self) -> float:
        if self.context_percent is None:
            return CLOSED_BOOK_DIFFICULTY
        return 100.0 - self.context_percent


class ContextLengthSpectrum(BaseModel, extra="forbid", frozen=True):
    setting: Literal["context_length"]
    dataset: QADatasetRef
    shots: int = Field(0, ge=0, le=5, description="Demonstrations, cut like the question's.")
    context_words: int | None = Field(
        None,
        ge=1,
        description="Long passages (Wikipedia pages): the 100% context is at most this many "
        "words of whole sentences around the answer; null keeps whole passages (SQuAD).",
    )
    generating: Generating = Generating()
    levels: tuple[ContextLevel, ...] = Field(min_length=1)

    @field_validator("levels")
    @classmethod
    def _distinct(cls, levels: tuple[ContextLevel, ...]) -> tuple[ContextLevel, ...]:
        check_unique([level.label() for level in levels], "context level")
        return levels

    def metrics(self) -> tuple[str, ...]:
        return tuple(name for name in METRICS if name != "accuracy")

    def expand(self, n_examples: int | None, seed: int) -> list[Level]:
        difficulties = default_difficulties(
            [level.difficulty for level in self.levels],
            [level.natural_difficulty() for level in self.levels],
        )
        return [
            Level(
                "context_length",
                level.label(),
                difficulty,
                qa_level(
                    self.dataset,
                    (n_examples, seed),
                    self.shots,
                    level.context_percent,
                    needs_passage=True,
                    generating=self.generating,
                    context_words=self.context_words,
                ),
            )
            for level, difficulty in zip(self.levels, difficulties, strict=True)
        ]


register_setting("context_length", ContextLengthSpectrum, VERSION)
