"""Open question answering by greedy generation: closed book, or with part of a passage.

The answer is what the model writes after "Answer:" up to the first newline (or another stop
sequence), scored after SQuAD's normalization against every accepted alias: exact match,
token F1, and a lenient containment match reported under its own name. `accuracy` repeats
exact match, the fraction answered correctly, under the name every setting shares, so one
spectrum can hold factoid and multiple-choice levels (setting 6). Each stored example keeps
the answer, every alias (JSON) and, as its option_scores, (exact_match, f1, contains_answer).

All three scores compare texts after the official SQuAD v1.1 normalization, so a model is not
penalised for case, punctuation, articles or spacing. Each is the best score over the aliases.
One rule differs from the official script: an empty prediction is never correct, even against an
alias that normalizes to "" (such aliases, e.g. "The", are ignored), so a model that stops at
once cannot score.
"""

from __future__ import annotations

import json
import math
import re
import string
from collections import Counter
from collections.abc import Sequence
from functools import lru_cache
from typing import Literal

from pydantic import BaseModel, Field, field_validator

from jdspec.data.context_cut import cut_context, word_count
from jdspec.data.qa import QA_DATASETS, QAData, QAItem, load_qa
from jdspec.eval.requests import Generation, GenerationRequest, prompt_hash
from jdspec.registry import unknown_name_message
from jdspec.results import ExampleRecord, MetricValue, TaskResult
from jdspec.tasks.core import TASK_KINDS, DataSource, TaskKind, seeded_sample

VERSION = 1
QA_METRICS = ("exact_match", "f1", "contains_answer")
METRICS = (*QA_METRICS, "accuracy")
_PUNCTUATION = frozenset(string.punctuation)  # ASCII only, as in the official SQuAD script
_ARTICLES = re.compile(r"\b(a|an|the)\b")


class QADatasetRef(DataSource):
    name: str = Field(description="An open-QA data set: squad, trivia_qa, nq_open, freebaseqa.")

    @field_validator("name")
    @classmethod
    def _known(cls, name: str) -> str:
        if name not in QA_DATASETS.names():
            raise ValueError(unknown_name_message("QA data set", name, QA_DATASETS.names()))
        return name


class Generating(BaseModel, extra="forbid", frozen=True):
    """How answers are generated; part of the cell key."""

    stop: tuple[str, ...] = Field(("\n",), description="Answers end before any of these.")
    max_new_tokens: int = Field(32, ge=1, le=1024, description="Longest answer, in tokens.")


class QALevel(BaseModel, extra="forbid", frozen=True):
    """Everything that decides one open-QA level's result; it goes into the cell key."""

    kind: Literal["qa"] = "qa"
    version: int = VERSION
    dataset: str
    source: str
    revision: str
    n_examples: int | None
    seed: int
    shots: int
    context_percent: float | None  # None: closed book
    context_words: int | None  # long passages: "100%" is this many words around the answer
    needs_passage: bool  # sample only questions whose passage holds the answer
    generating: Generating


def qa_level(
    dataset: QADatasetRef,
    sampling: tuple[int | None, int],
    shots: int,
    context_percent: float | None,
    needs_passage: bool,
    generating: Generating,
    context_words: int | None = None,
) -> QALevel:
    n_examples, seed = sampling
    return QALevel(
        dataset=dataset.name,
        source=dataset.source,
        revision=dataset.resolved_revision(),
        n_examples=n_examples,
        seed=seed,
        shots=shots,
        context_percent=context_percent,
        context_words=context_words,
        needs_passage=needs_passage,
        generating=generating,
    )


@lru_cache(maxsize=4)
def _load(dataset: str, source: str, revision: str) -> QAData:
    return load_qa(dataset, source, revision)


def select_items(level: QALevel) -> tuple[list[QAItem], QAData]:
    """A seeded sample; with `needs_passage`, only questions whose answer is in their passage,
    so every context length of setting 3 asks the same questions."""
    data = _load(level.dataset, level.source, level.revision)
    eligible = [
        item for item in data.items if not level.needs_passage or item.answer_span is not None
    ]
    which = "questions with the answer in their passage" if level.needs_passage else "questions"
    return seeded_sample(
        eligible, level.n_examples, level.seed, f"{which} in {level.dataset}"
    ), data


def _question_block(item: QAItem, level: QALevel) -> str:
    question = f"Question: {item.question.strip()}\nAnswer:"
    if level.context_percent is None:
        return question
    if item.answer_span is None:
        raise ValueError(f"question {item.id} has no answer in its passage to cut around")
    start, end = item.answer_span
    return f"Background: {cut_passage(item.passage, start, end, level)}\n{question}"


def cut_passage(passage: str, start: int, end: int, level: QALevel) -> str:
    """The level's share of the passage around [start, end); with `context_words`, a share of
    at most that many words (the "100%" context of a long page)."""
    if level.context_percent is None:
        raise ValueError("a closed-book level has no passage to cut")
    fraction = level.context_percent / 100
    total = word_count(passage)
    if level.context_words is not None and total > level.context_words:
        fraction *= level.context_words / total
    return cut_context(passage, start, end, fraction)


def build_request(level: QALevel, item: QAItem, data: QAData) -> GenerationRequest:
    """Demonstrations in the level's own format (same context share), then the question."""
    demos = data.demonstrations[: level.shots]
    if len(demos) < level.shots:
        raise ValueError(f"{level.shots} shots asked but {level.dataset} has {len(demos)}")
    shots = "".join(f"{_question_block(demo, level)} {demo.aliases[0]}\n\n" for demo in demos)
    return GenerationRequest(
        shots + _question_block(item, level),
        level.generating.stop,
        level.generating.max_new_tokens,
    )


def build(level: QALevel) -> tuple[list[QAItem], list[GenerationRequest]]:
    items, data = select_items(level)
    return items, [build_request(level, item, data) for item in items]


def score(
    level: QALevel,
    items: list[QAItem],
    requests: list[GenerationRequest],
    generations: list[Generation],
) -> TaskResult:
    """Mean exact match, F1 and containment; each record keeps the answer and every alias."""
    records, totals = [], dict.fromkeys(QA_METRICS, 0.0)
    for item, request, generation in zip(items, requests, generations, strict=True):
        scores = qa_scores(generation.text, item.aliases)
        for name in QA_METRICS:
            totals[name] += scores[name]
        records.append(
            ExampleRecord(
                example_id=item.id,
                prompt_hash=prompt_hash(request.context),
                prediction=generation.text,
                gold=json.dumps(list(item.aliases), ensure_ascii=False),
                correct=scores["exact_match"] == 1.0,
                score=generation.logprob,
                option_scores=tuple(scores[name] for name in QA_METRICS),
            )
        )
    n = len(records)
    means = {name: total / n if n else math.nan for name, total in totals.items()}
    metrics = [MetricValue(name, means[name], n) for name in QA_METRICS]
    metrics.append(MetricValue("accuracy", means["exact_match"], n))
    return TaskResult(tuple(metrics), tuple(records))


def normalize_answer(text: str) -> str:
    """Lowercase, drop ASCII punctuation, drop the articles a/an/the, collapse whitespace."""
    text = "".join(character for character in text.lower() if character not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str, aliases: Sequence[str]) -> float:
    """1.0 when the normalized prediction equals some normalized alias, else 0.0."""
    predicted, golds = _normalized(prediction, aliases)
    return float(bool(predicted) and predicted in golds)


def token_f1(prediction: str, aliases: Sequence[str]) -> float:
    """Best SQuAD token F1 over the aliases: harmonic mean of token precision and recall."""
    predicted, golds = _normalized(prediction, aliases)
    if not predicted:
        return 0.0
    return max((_f1(predicted.split(), gold.split()) for gold in golds), default=0.0)


def contains_answer(prediction: str, aliases: Sequence[str]) -> float:
    """1.0 when some alias's tokens occur contiguously in the prediction's tokens, else 0.0.

    The lenient score for chatty models ("It was in 1923."); token-level so that the alias "23"
    is not found inside "1923".
    """
    predicted, golds = _normalized(prediction, aliases)
    tokens = predicted.split()
    return float(any(_contains(tokens, gold.split()) for gold in golds))


def qa_scores(prediction: str, aliases: Sequence[str]) -> dict[str, float]:
    """All three scores under the names in QA_METRICS."""
    return {
        "exact_match": exact_match(prediction, aliases),
        "f1": token_f1(prediction, aliases),
        "contains_answer": contains_answer(prediction, aliases),
    }


def _normalized(prediction: str, aliases: Sequence[str]) -> tuple[str, list[str]]:
    """The normalized prediction and the aliases that keep some text after normalization."""
    golds = [normalize_answer(alias) for alias in aliases]
    return normalize_answer(prediction), [gold for gold in golds if gold]


def _f1(predicted: list[str], gold: list[str]) -> float:
    common = sum((Counter(predicted) & Counter(gold)).values())
    if common == 0:
        return 0.0
    precision = common / len(predicted)
    recall = common / len(gold)
    return 2 * precision * recall / (precision + recall)


def _contains(tokens: list[str], needle: list[str]) -> bool:
    width = len(needle)
    return any(tokens[start : start + width] == needle for start in range(len(tokens) - width + 1))


TASK_KINDS.register("qa")(TaskKind(build, score))
