"""Open-QA scores on hand-worked cases: SQuAD normalization, best alias, the empty-answer rule."""

from __future__ import annotations

import pytest

from jdspec.qa_metrics import (
    QA_METRICS,
    contains_answer,
    exact_match,
    normalize_answer,
    qa_scores,
    token_f1,
)


@pytest.mark.parametrize(
    ("text", "normalized"),
    [
        ("The Cat", "cat"),
        ("  A   dog,\tan owl!  ", "dog owl"),
        ("Theatre", "theatre"),  # articles only as whole words
        ("Saint-Bernadette's", "saintbernadettes"),  # punctuation removed, not turned to spaces
        ("the", ""),
        ("Beyoncé KNOWLES", "beyoncé knowles"),
        ("“Crazy in Love”", "“crazy in love”"),  # curly quotes are not ASCII punctuation
    ],
)
def test_normalize_answer(text: str, normalized: str) -> None:
    assert normalize_answer(text) == normalized


def test_exact_match_ignores_case_punctuation_and_articles() -> None:
    assert exact_match("The Eiffel Tower.", ["eiffel tower"]) == 1.0
    assert exact_match("Eiffel", ["eiffel tower"]) == 0.0
    assert exact_match("café", ["Café!"]) == 1.0


def test_f1_hand_worked() -> None:
    # "the cat sat" -> [cat, sat]; "a cat sat down" -> [cat, sat, down]; common 2.
    # P = 2/2 = 1, R = 2/3, F1 = 2 * 1 * (2/3) / (1 + 2/3) = (4/3) / (5/3) = 4/5.
    assert token_f1("the cat sat", ["a cat sat down"]) == pytest.approx(0.8)
    # "sat sat cat" vs "cat sat": counts {sat: 2, cat: 1} & {cat: 1, sat: 1} -> common 2.
    # P = 2/3, R = 2/2 = 1, F1 = 2 * (2/3) / (5/3) = 4/5.
    assert token_f1("sat sat cat", ["cat sat"]) == pytest.approx(0.8)
    assert token_f1("dog", ["cat sat"]) == 0.0


def test_best_alias_wins() -> None:
    aliases = ["Sunset Boulevard", "Sunset Blvd.", "West Sunset Boulevard"]
    assert exact_match("sunset blvd", aliases) == 1.0
    # "sunset boulevard street" vs "sunset boulevard": P = 2/3, R = 1, F1 = 0.8;
    # vs "west sunset boulevard": P = 2/3, R = 2/3, F1 = 2/3; vs "sunset blvd": 1/3, 1/2 -> 0.4.
    assert token_f1("Sunset Boulevard street", aliases) == pytest.approx(0.8)


def test_empty_prediction_is_never_correct() -> None:
    for prediction in ["", "   ", "The.", "a an the"]:
        assert qa_scores(prediction, ["The", "cat"]) == dict.fromkeys(QA_METRICS, 0.0)


def test_aliases_empty_after_normalization_are_ignored() -> None:
    assert qa_scores("The", ["The"]) == dict.fromkeys(QA_METRICS, 0.0)
    assert qa_scores("cat", ["The", "!", "cat"]) == dict.fromkeys(QA_METRICS, 1.0)
    assert qa_scores("cat", []) == dict.fromkeys(QA_METRICS, 0.0)


def test_contains_answer_respects_token_boundaries() -> None:
    assert contains_answer("It happened in 1923.", ["23"]) == 0.0
    assert contains_answer("It happened in 1923.", ["1923"]) == 1.0
    assert contains_answer("I think it is the Eiffel Tower, in Paris", ["eiffel tower"]) == 1.0
    assert contains_answer("Tower Eiffel", ["Eiffel Tower"]) == 0.0  # contiguous, in order
    assert contains_answer("Eiffel", ["Eiffel Tower"]) == 0.0


def test_qa_scores_names_every_metric() -> None:
    scores = qa_scores("It is Paris, France", ["Paris"])
    assert tuple(scores) == QA_METRICS
    # [it, is, paris, france] vs [paris]: P = 1/4, R = 1, F1 = 2 * (1/4) / (5/4) = 2/5.
    assert scores == {"exact_match": 0.0, "f1": pytest.approx(0.4), "contains_answer": 1.0}
