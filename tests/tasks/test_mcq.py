"""Multiple-choice prompts, option dropping and scoring, against hand-worked cases."""

from __future__ import annotations

import pytest

from jdspec.data.mcq import MCQData, MCQItem
from jdspec.eval.requests import LoglikelihoodRequest
from jdspec.tasks.mcq import MCQLevel, build_request, keep_options, score, select_items

ITEM = MCQItem("q1", "What is 2+2?", ("3", "4", "5", "22"), 1, "elementary_mathematics")
DEMO = MCQItem("d1", "What is 1+1?", ("2", "1", "0", "11"), 0, "elementary_mathematics")
DATA = MCQData((ITEM,), {"elementary_mathematics": (DEMO,)})


def _level(**changes: object) -> MCQLevel:
    fields = dict(
        dataset="mmlu",
        source="offline",
        revision="0.9.0",
        n_examples=None,
        seed=0,
        shots=1,
        option_count=4,
        option_pool=4,
        answer_format="letters",
    )
    fields.update(changes)
    return MCQLevel(**fields)


def test_hendrycks_prompt_exactly() -> None:
    request = build_request(_level(), ITEM, DATA)
    assert request.context == (
        "The following are multiple choice questions (with answers) about elementary "
        "mathematics.\n\n"
        "What is 1+1?\nA. 2\nB. 1\nC. 0\nD. 11\nAnswer: A\n\n"
        "What is 2+2?\nA. 3\nB. 4\nC. 5\nD. 22\nAnswer:"
    )
    assert request.continuations == (" A", " B", " C", " D")


def test_cloze_prompt_scores_option_texts() -> None:
    request = build_request(_level(answer_format="cloze", shots=0), ITEM, DATA)
    assert request.context == "Question: What is 2+2?\nAnswer:"
    assert request.continuations == (" 3", " 4", " 5", " 22")


@pytest.mark.parametrize("seed", range(20))
def test_dropping_keeps_gold_and_order_and_nests(seed: int) -> None:
    item = MCQItem(f"q{seed}", "?", ("a", "b", "c", "d", "e"), seed % 5, "s")
    sets = {k: keep_options(item, k, seed) for k in (5, 4, 3, 2)}
    for k, kept in sets.items():
        assert len(kept.choices) == k
        assert kept.choices[kept.answer] == item.choices[item.answer]
        assert list(kept.choices) == sorted(kept.choices)  # original order kept
    assert set(sets[2].choices) <= set(sets[3].choices) <= set(sets[4].choices)


def test_dropping_is_seeded() -> None:
    item = MCQItem("q", "?", tuple("abcdefgh"), 0, "s")
    assert keep_options(item, 3, 1) == keep_options(item, 3, 1)
    assert len({keep_options(item, 3, seed).choices for seed in range(10)}) > 1


def test_score_hand_worked() -> None:
    items = [ITEM, MCQItem("q2", "?", ("x", "yy"), 0, "s")]
    requests = [
        LoglikelihoodRequest("c1", (" 3", " 4", " 5", " 22")),
        LoglikelihoodRequest("c2", (" x", " yy")),
    ]
    # q1: B wins (correct). q2: tie -> earlier option A (correct); per char: -1/1 vs -1/2 -> B.
    result = score(
        _level(answer_format="cloze"), items, requests, [(-3.0, -1.0, -2.0, -5.0), (-1.0, -1.0)]
    )
    metrics = {m.name: (m.value, m.n) for m in result.metrics}
    assert metrics == {"accuracy": (1.0, 2), "accuracy_norm": (0.5, 2)}
    assert [e.prediction for e in result.examples] == ["B", "A"]
    assert result.examples[0].option_scores == (-3.0, -1.0, -2.0, -5.0)
    assert result.examples[0].score == -1.0


def test_letters_report_accuracy_only() -> None:
    result = score(
        _level(),
        [ITEM],
        [LoglikelihoodRequest("c", (" A", " B", " C", " D"))],
        [(-1.0, -2.0, -3.0, -4.0)],
    )
    assert [(m.name, m.value) for m in result.metrics] == [("accuracy", 0.0)]


def test_every_level_uses_the_same_questions() -> None:
    levels = [_level(dataset="arc_easy", n_examples=30, option_count=k, shots=0) for k in (4, 3, 2)]
    chosen = [select_items(level)[0] for level in levels]
    assert [i.id for i in chosen[0]] == [i.id for i in chosen[1]] == [i.id for i in chosen[2]]
    assert [len(i.choices) for i in chosen[2]] == [2] * 30
