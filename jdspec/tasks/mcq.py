"""Multiple-choice questions: prompts (Hendrycks letters or cloze), option dropping, scoring.

Letters: the MMLU prompt of Hendrycks et al.; the prediction is the option letter whose
" A"/" B"/... token has the highest next-token log-likelihood. Cloze: each option's text is
scored as a continuation of "Question: ...\\nAnswer:" as lm-evaluation-harness does for ARC;
`accuracy_norm` divides by the option's length in characters. Small models (~100M) sit at
chance with letters, so cloze is what lets them show a difficulty spectrum.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from functools import lru_cache
from typing import Literal

from pydantic import BaseModel, Field, field_validator

from jdspec.data.mcq import MCQ_DATASETS, MCQData, MCQItem, load_mcq
from jdspec.eval.requests import LoglikelihoodRequest, prompt_hash
from jdspec.registry import unknown_name_message
from jdspec.results import ExampleRecord, MetricValue, TaskResult
from jdspec.tasks.core import TASK_KINDS, DataSource, TaskKind, seeded_sample

VERSION = 1
LETTERS = "ABCDEFGHIJ"
METRICS = {"letters": ("accuracy",), "cloze": ("accuracy", "accuracy_norm")}


class DatasetRef(DataSource):
    name: str = Field(description="A registered data set: mmlu, arc_easy, arc_challenge, sciq, ...")

    @field_validator("name")
    @classmethod
    def _known(cls, name: str) -> str:
        if name not in MCQ_DATASETS.names():
            raise ValueError(unknown_name_message("data set", name, MCQ_DATASETS.names()))
        return name


AnswerFormat = Literal["letters", "cloze"]


class MCQLevel(BaseModel, extra="forbid", frozen=True):
    """Everything that decides one multiple-choice level's result; it goes into the cell key."""

    kind: Literal["mcq"] = "mcq"
    version: int = VERSION
    dataset: str
    source: str
    revision: str
    n_examples: int | None
    seed: int
    shots: int
    option_count: int
    option_pool: int  # only questions with at least this many options, so all levels share them
    answer_format: AnswerFormat


def mcq_level(
    dataset: DatasetRef,
    answer_format: AnswerFormat,
    sampling: tuple[int | None, int],
    shots: int,
    option_count: int,
    option_pool: int,
) -> MCQLevel:
    """The concrete level both MCQ settings produce; `sampling` is (n_examples, seed)."""
    n_examples, seed = sampling
    return MCQLevel(
        dataset=dataset.name,
        source=dataset.source,
        revision=dataset.resolved_revision(),
        n_examples=n_examples,
        seed=seed,
        shots=shots,
        option_count=option_count,
        option_pool=option_pool,
        answer_format=answer_format,
    )


@lru_cache(maxsize=4)
def _load(dataset: str, source: str, revision: str) -> MCQData:
    return load_mcq(dataset, source, revision)


def keep_options(item: MCQItem, option_count: int, seed: int) -> MCQItem:
    """Drop distractors by a seeded choice; keep the gold; keep the original order; re-letter.

    The drop order is one seeded permutation per question, so the 2-option set is inside the
    3-option set: levels differ only in how many distractors remain.
    """
    distractors = [i for i in range(len(item.choices)) if i != item.answer]
    random.Random(f"{seed}:{item.id}").shuffle(distractors)
    kept = sorted([item.answer, *distractors[: option_count - 1]])
    choices = tuple(item.choices[i] for i in kept)
    return MCQItem(
        item.id, item.question, choices, kept.index(item.answer), item.subject, item.passage
    )


def select_items(level: MCQLevel) -> tuple[list[MCQItem], MCQData]:
    """The level's questions: a seeded sample of those with enough options, options reduced."""
    data = _load(level.dataset, level.source, level.revision)
    eligible = [item for item in data.items if len(item.choices) >= level.option_pool]
    what = f"eligible questions in {level.dataset}"
    sample = seeded_sample(eligible, level.n_examples, level.seed, what)
    return [keep_options(item, level.option_count, level.seed) for item in sample], data


def _question_block(item: MCQItem, answer_format: AnswerFormat) -> str:
    passage = f"{item.passage}\n" if item.passage else ""
    if answer_format == "cloze":
        return f"{passage}Question: {item.question.strip()}\nAnswer:"
    options = "".join(f"{LETTERS[i]}. {choice}\n" for i, choice in enumerate(item.choices))
    return f"{passage}{item.question.strip()}\n{options}Answer:"


def _gold_text(item: MCQItem, answer_format: AnswerFormat) -> str:
    return (
        f" {item.choices[item.answer]}" if answer_format == "cloze" else f" {LETTERS[item.answer]}"
    )


def build_request(level: MCQLevel, item: MCQItem, data: MCQData) -> LoglikelihoodRequest:
    """The prompt with its demonstrations, and one continuation per option."""
    demos = [
        keep_options(demo, level.option_count, level.seed)
        for demo in data.demonstrations_for(item, level.shots)
    ]
    shots = "".join(
        f"{_question_block(demo, level.answer_format)}{_gold_text(demo, level.answer_format)}\n\n"
        for demo in demos
    )
    header = ""
    if level.answer_format == "letters":
        subject = item.subject.replace("_", " ")
        header = f"The following are multiple choice questions (with answers) about {subject}.\n\n"
    context = header + shots + _question_block(item, level.answer_format)
    if level.answer_format == "cloze":
        continuations = tuple(f" {choice}" for choice in item.choices)
    else:
        continuations = tuple(f" {LETTERS[i]}" for i in range(len(item.choices)))
    return LoglikelihoodRequest(context, continuations)


def first_argmax(values: Sequence[float]) -> int:
    """First index of the maximum: ties go to the earlier option, as numpy.argmax gives them."""
    return max(range(len(values)), key=lambda i: (values[i], -i))


def length_normalized_choice(scores: Sequence[float], choices: Sequence[str]) -> int:
    """lm-evaluation-harness's acc_norm prediction: log-likelihood per character of the choice."""
    return first_argmax(
        [score / max(len(choice), 1) for score, choice in zip(scores, choices, strict=True)]
    )


def score(
    level: MCQLevel,
    items: list[MCQItem],
    requests: list[LoglikelihoodRequest],
    loglikelihoods: list[tuple[float, ...]],
) -> TaskResult:
    """Accuracy (and length-normalised accuracy for cloze) with one record per question."""
    records, normalized_correct = [], 0
    for item, request, scores in zip(items, requests, loglikelihoods, strict=True):
        predicted = first_argmax(scores)
        records.append(
            ExampleRecord(
                example_id=item.id,
                prompt_hash=prompt_hash(request.context),
                prediction=LETTERS[predicted],
                gold=LETTERS[item.answer],
                correct=predicted == item.answer,
                score=scores[predicted],
                option_scores=tuple(scores),
            )
        )
        normalized_correct += length_normalized_choice(scores, item.choices) == item.answer
    n = len(records)
    accuracy = sum(r.correct for r in records) / n if n else math.nan
    metrics = [MetricValue("accuracy", accuracy, n)]
    if level.answer_format == "cloze":
        metrics.append(MetricValue("accuracy_norm", normalized_correct / n if n else math.nan, n))
    return TaskResult(tuple(metrics), tuple(records))


def build(level: MCQLevel) -> tuple[list[MCQItem], list[LoglikelihoodRequest]]:
    items, data = select_items(level)
    return items, [build_request(level, item, data) for item in items]


TASK_KINDS.register("mcq")(TaskKind(build, score))
