"""Requests and lm-eval's acc / acc_norm on hand-made log-likelihoods."""

from __future__ import annotations

import numpy as np

from jdspec.data.benchmarks import ChoiceDoc
from jdspec.eval.requests import LoglikelihoodRequest, prompt_hash
from jdspec.results import ExampleRecord
from jdspec.tasks.choice import choice_requests, score_choices

SHARED = ChoiceDoc("s1", ("Question: q\nAnswer:",), (" a", " bbbb"), ("a", "bbbb"), 1)
TIED = ChoiceDoc("s2", ("Question: r\nAnswer:",), (" xx", " yy", " z"), ("xx", "yy", "z"), 1)
WINOGRANDE = ChoiceDoc("w1", ("It was A", "It was B"), (" big.",), ("It was A", "It was B"), 1)


def test_shared_context_is_one_request_per_choice_contexts_one_each() -> None:
    requests, places = choice_requests([SHARED, WINOGRANDE, TIED])
    assert requests == [
        LoglikelihoodRequest("Question: q\nAnswer:", (" a", " bbbb")),
        LoglikelihoodRequest("It was A", (" big.",)),
        LoglikelihoodRequest("It was B", (" big.",)),
        LoglikelihoodRequest("Question: r\nAnswer:", (" xx", " yy", " z")),
    ]
    assert places == [[(0, 0), (0, 1)], [(1, 0), (2, 0)], [(3, 0), (3, 1), (3, 2)]]


def test_accuracy_and_norm_differ_and_ties_go_first() -> None:
    docs = [SHARED, TIED]
    requests, places = choice_requests(docs)
    # SHARED: raw argmax is "a" (wrong); per character -2/1 < -4/4, so "bbbb" (right).
    # TIED: raw tie between "xx" and "yy" -> first (wrong); per character -3/2 > -3/1.
    loglikelihoods = [(-2.0, -4.0), (-3.0, -3.0, -3.0)]
    result = score_choices(docs, requests, places, loglikelihoods)
    assert {metric.name: metric.value for metric in result.metrics} == {
        "accuracy": 0.0,
        "accuracy_norm": 0.5,
    }
    assert all(metric.n == 2 for metric in result.metrics)
    assert result.examples == (
        ExampleRecord(
            "s1", prompt_hash("Question: q\nAnswer:"), "0", "1", False, -2.0, (-2.0, -4.0)
        ),
        ExampleRecord(
            "s2", prompt_hash("Question: r\nAnswer:"), "0", "1", False, -3.0, (-3.0, -3.0, -3.0)
        ),
    )


def test_predictions_match_numpy_argmax() -> None:
    """lm-eval takes np.argmax of the lls and of lls / len(choice): first index on ties."""
    generator = np.random.default_rng(0)
    choices = ("a", "bb", "ccc", "dddd")
    docs, loglikelihoods = [], []
    for index in range(200):
        docs.append(ChoiceDoc(f"{index}", ("c",), tuple(f" {c}" for c in choices), choices, 0))
        loglikelihoods.append(tuple(-generator.integers(1, 5, size=4).astype(float)))
    requests, places = choice_requests(docs)
    result = score_choices(docs, requests, places, loglikelihoods)
    lengths = np.array([len(choice) for choice in choices], dtype=float)
    predicted = [int(np.argmax(scores)) for scores in loglikelihoods]
    normalized = [int(np.argmax(np.array(scores) / lengths)) for scores in loglikelihoods]
    assert [record.prediction for record in result.examples] == [str(p) for p in predicted]
    values = {metric.name: metric.value for metric in result.metrics}
    assert values["accuracy"] == sum(p == 0 for p in predicted) / 200
    assert values["accuracy_norm"] == sum(p == 0 for p in normalized) / 200


def test_winogrande_reports_accuracy_only() -> None:
    requests, places = choice_requests([WINOGRANDE])
    result = score_choices([WINOGRANDE], requests, places, [(-5.0,), (-4.0,)])
    assert [(metric.name, metric.value) for metric in result.metrics] == [("accuracy", 1.0)]
    (record,) = result.examples
    assert record.prompt_hash == prompt_hash("It was A")
    assert (record.prediction, record.gold, record.correct) == ("1", "1", True)
    assert record.score == -4.0 and record.option_scores == (-5.0, -4.0)
