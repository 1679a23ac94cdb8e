"""lm-evaluation-harness multiple choice: requests for each document, and acc / acc_norm.

`accuracy` is lm-eval's acc (argmax of the choices' log-likelihoods) and `accuracy_norm` its
acc_norm (argmax of log-likelihood divided by the choice string's length in characters); ties
go to the first choice, as numpy.argmax gives them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from jdspec.data.benchmarks import ChoiceDoc
from jdspec.eval.requests import LoglikelihoodRequest, prompt_hash
from jdspec.results import ExampleRecord, MetricValue, TaskResult
from jdspec.tasks.mcq import first_argmax, length_normalized_choice

Place = tuple[int, int]  # (request index, continuation index) of one choice


def choice_requests(
    docs: Sequence[ChoiceDoc],
) -> tuple[list[LoglikelihoodRequest], list[list[Place]]]:
    """The requests to score, and where each document's choices land among their answers.

    A shared context is one request holding every continuation, so it runs through the model
    once; per-choice contexts (WinoGrande) are one request per choice.
    """
    requests: list[LoglikelihoodRequest] = []
    places: list[list[Place]] = []
    for doc in docs:
        if len(doc.contexts) == 1:
            places.append([(len(requests), column) for column in range(len(doc.choices))])
            requests.append(LoglikelihoodRequest(doc.contexts[0], doc.continuations))
            continue
        doc_places = []
        for index, context in enumerate(doc.contexts):
            continuation = doc.continuations[index if len(doc.continuations) > 1 else 0]
            doc_places.append((len(requests), 0))
            requests.append(LoglikelihoodRequest(context, (continuation,)))
        places.append(doc_places)
    return requests, places


def score_choices(
    docs: Sequence[ChoiceDoc],
    requests: Sequence[LoglikelihoodRequest],
    places: Sequence[Sequence[Place]],
    loglikelihoods: Sequence[tuple[float, ...]],
) -> TaskResult:
    """Accuracy, and accuracy_norm where lm-eval defines it, with one record per document.

    lm-eval defines acc_norm only for shared contexts: with per-choice contexts (WinoGrande)
    the choices are the contexts, so it reports acc alone, and so do we.
    """
    if len(loglikelihoods) != len(requests):
        raise ValueError(f"{len(loglikelihoods)} answers to {len(requests)} requests")
    records, normalized_correct = [], 0
    for doc, doc_places in zip(docs, places, strict=True):
        scores = [loglikelihoods[request][column] for request, column in doc_places]
        predicted = first_argmax(scores)
        records.append(
            ExampleRecord(
                example_id=doc.id,
                prompt_hash=prompt_hash(requests[doc_places[0][0]].context),
                prediction=str(predicted),
                gold=str(doc.gold),
                correct=predicted == doc.gold,
                score=scores[predicted],
                option_scores=tuple(scores),
            )
        )
        normalized_correct += length_normalized_choice(scores, doc.choices) == doc.gold
    count = len(records)
    accuracy = sum(record.correct for record in records) / count if count else math.nan
    metrics = [MetricValue("accuracy", accuracy, count)]
    if all(len(doc.contexts) == 1 for doc in docs):
        norm = normalized_correct / count if count else math.nan
        metrics.append(MetricValue("accuracy_norm", norm, count))
    return TaskResult(tuple(metrics), tuple(records))
