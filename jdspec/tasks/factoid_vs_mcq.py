"""Setting 6: the same kind of knowledge asked two ways; recalling a fact is harder than
recognising it among options.

Two levels of one spectrum: factoid QA answered by greedy generation (FreebaseQA on the hub;
TriviaQA closed book or NQ-open offline) and multiple choice (MMLU). Both report `accuracy`,
the fraction answered correctly (exact match for factoid), so their drops compare directly.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from jdspec.tasks.core import Level, register_setting
from jdspec.tasks.mcq import AnswerFormat, DatasetRef, mcq_level
from jdspec.tasks.qa import Generating, QADatasetRef, qa_level

VERSION = 1


class FactoidPart(BaseModel, extra="forbid", frozen=True):
    dataset: QADatasetRef
    shots: int = Field(0, ge=0, le=5, description="Demonstrations (question and first alias).")
    generating: Generating = Generating()
    difficulty: float = Field(1.0, description="Harder than multiple choice by default.")


class MultipleChoicePart(BaseModel, extra="forbid", frozen=True):
    dataset: DatasetRef
    answer_format: AnswerFormat = Field("letters", description="letters (MMLU style) or cloze")
    option_count: int = Field(4, ge=2, le=10, description="Options shown, gold included.")
    shots: int = Field(0, ge=0, le=5, description="Demonstrations before each question.")
    difficulty: float = Field(0.0, description="Easier than factoid QA by default.")


class FactoidVsMCQSpectrum(BaseModel, extra="forbid", frozen=True):
    setting: Literal["factoid_vs_mcq"]
    factoid: FactoidPart
    multiple_choice: MultipleChoicePart

    def metrics(self) -> tuple[str, ...]:
        return ("accuracy",)

    def expand(self, n_examples: int | None, seed: int) -> list[Level]:
        factoid, choice = self.factoid, self.multiple_choice
        sampling = (n_examples, seed)
        return [
            Level(
                "factoid_vs_mcq",
                f"factoid ({factoid.dataset.name})",
                factoid.difficulty,
                qa_level(
                    factoid.dataset,
                    sampling,
                    factoid.shots,
                    context_percent=None,
                    needs_passage=False,
                    generating=factoid.generating,
                ),
            ),
            Level(
                "factoid_vs_mcq",
                f"multiple choice ({choice.dataset.name})",
                choice.difficulty,
                mcq_level(
                    choice.dataset,
                    choice.answer_format,
                    sampling,
                    choice.shots,
                    choice.option_count,
                    choice.option_count,
                ),
            ),
        ]


register_setting("factoid_vs_mcq", FactoidVsMCQSpectrum, VERSION)
