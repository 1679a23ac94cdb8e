"""Open QA: prompts around a cut passage, EM / F1 / containment per example, and the scores
themselves on hand-worked cases (SQuAD normalization, best alias, the empty-answer rule)."""

from __future__ import annotations

import json

import pytest

from jdspec.data.context_cut import split_sentences, word_count
from jdspec.data.qa import QAData, QAItem
from jdspec.eval.requests import Generation, GenerationRequest
from jdspec.tasks.qa import (
    QA_METRICS,
    Generating,
    QADatasetRef,
    build_request,
    contains_answer,
    cut_passage,
    exact_match,
    normalize_answer,
    qa_level,
    qa_scores,
    score,
    select_items,
    token_f1,
)

PASSAGE = (
    "The river rises in the hills. It flows west for ninety miles. "
    "Its delta was mapped in 1901 by Ada Lind. Farmers use its water."
)
ITEM = QAItem("q1", "Who mapped the delta?", ("Ada Lind", "Lind"), PASSAGE, None)
SPAN = (PASSAGE.index("Ada Lind"), PASSAGE.index("Ada Lind") + len("Ada Lind"))
DEMO = QAItem("d1", "How far does it flow?", ("ninety miles",), PASSAGE, None)


def _level(context_percent: float | None, shots: int = 0, context_words: int | None = None):
    return qa_level(
        QADatasetRef(name="squad"),
        (2, 0),
        shots,
        context_percent,
        needs_passage=context_percent is not None,
        generating=Generating(stop=("\n", "."), max_new_tokens=8),
        context_words=context_words,
    )


def _with_span(item: QAItem, answer: str) -> QAItem:
    start = item.passage.index(answer)
    return QAItem(item.id, item.question, item.aliases, item.passage, (start, start + len(answer)))


def test_closed_book_prompt_has_no_background() -> None:
    request = build_request(_level(None), ITEM, QAData((ITEM,), ()))
    assert request == GenerationRequest(
        "Question: Who mapped the delta?\nAnswer:", ("\n", "."), max_new_tokens=8
    )


def test_context_prompt_keeps_the_answer_sentence_and_demonstrations_share_the_format() -> None:
    item, demo = _with_span(ITEM, "Ada Lind"), _with_span(DEMO, "ninety miles")
    request = build_request(_level(20, shots=1), item, QAData((item,), (demo,)))
    assert request.context == (
        "Background: It flows west for ninety miles.\n"
        "Question: How far does it flow?\nAnswer: ninety miles\n\n"
        "Background: Its delta was mapped in 1901 by Ada Lind.\n"
        "Question: Who mapped the delta?\nAnswer:"
    )
    full = build_request(_level(100), item, QAData((item,), ()))
    assert full.context.startswith(f"Background: {PASSAGE}\n")


def test_context_words_caps_the_full_context() -> None:
    item = _with_span(ITEM, "Ada Lind")
    capped = cut_passage(PASSAGE, *item.answer_span, _level(100, context_words=14))  # type: ignore[misc]
    assert "Ada Lind" in capped and word_count(capped) <= 14
    sentence_starts = {start for start, _ in split_sentences(PASSAGE)}
    assert PASSAGE.index(capped) in sentence_starts
    assert capped != PASSAGE.strip()


def test_scores_are_max_over_aliases_and_empty_is_wrong() -> None:
    items = [
        ITEM,
        QAItem("q2", "Year?", ("1901",)),
        QAItem("q3", "Who?", ("Ada Lind",)),
        QAItem("q4", "Where?", ("the delta",)),
    ]
    answers = [" Lind", " in 1901 maybe", "", " Delta."]
    level = _level(None)
    requests = [build_request(level, item, QAData((), ())) for item in items]
    generations = [Generation(text, 2, -1.25) for text in answers]
    result = score(level, items, requests, generations)
    metrics = {metric.name: metric.value for metric in result.metrics}
    # EM: "lind" matches alias "Lind"; "delta" matches "the delta" after dropping the article.
    assert metrics["exact_match"] == pytest.approx(2 / 4)
    assert metrics["accuracy"] == metrics["exact_match"]
    # F1: 1, then "in 1901 maybe" vs "1901" = 2PR/(P+R) with P=1/3, R=1 -> 0.5; 0; 1.
    assert metrics["f1"] == pytest.approx((1 + 0.5 + 0 + 1) / 4)
    assert metrics["contains_answer"] == pytest.approx(3 / 4)
    first = result.examples[0]
    assert first.prediction == " Lind" and first.correct and first.score == -1.25
    assert json.loads(first.gold) == ["Ada Lind", "Lind"]
    assert result.examples[2].option_scores == (0.0, 0.0, 0.0)


@pytest.mark.integration
def test_squad_levels_ask_the_same_questions_and_every_cut_holds_the_answer() -> None:
    levels = [_level(percent) for percent in (100, 60, 20)]
    levels = [level.model_copy(update={"n_examples": 60}) for level in levels]
    selections = [select_items(level) for level in levels]
    ids = [[item.id for item in items] for items, _ in selections]
    assert ids[0] == ids[1] == ids[2]
    items, data = selections[2]
    for item in items:
        request = build_request(levels[2], item, data)
        background = request.context.split("\n")[0].removeprefix("Background: ")
        start, end = item.answer_span  # type: ignore[misc]
        assert item.passage[start:end] in background


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
