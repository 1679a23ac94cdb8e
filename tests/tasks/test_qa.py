"""Open QA: prompts around a cut passage, and EM / F1 / containment per example."""

from __future__ import annotations

import json

import pytest

from jdspec.data.context_cut import split_sentences, word_count
from jdspec.data.qa import QAData, QAItem
from jdspec.eval.requests import Generation, GenerationRequest
from jdspec.tasks.qa import (
    Generating,
    QADatasetRef,
    build_request,
    cut_passage,
    qa_level,
    score,
    select_items,
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
