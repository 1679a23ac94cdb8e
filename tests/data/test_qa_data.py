"""Open-QA rows become QAItems; the offline sets load with their documented sizes."""

from __future__ import annotations

import pytest

from jdspec.data import qa
from jdspec.data.qa import QA_DATASETS, QAItem, demonstrations, load_qa
from jdspec.errors import SpecError

PASSAGE = "Older than The Game by 23 years, the Regatta is held in June. Harvard won in 2003."


def test_squad_offline_doc_is_parsed() -> None:
    document = {
        "id": "abc",
        "title": "Harvard_University",
        "query": f"Title: Harvard_University\nBackground: {PASSAGE}\n"
        'Question: Regatta predates "The Game" by how many years?\nAnswer:',
        "answers_text": ["23 years", "23", "23", " "],
    }
    item = qa._squad_offline_item(document, 0)
    assert item == QAItem(
        "abc",
        'Regatta predates "The Game" by how many years?',
        ("23 years", "23"),
        PASSAGE,
        (23, 31),
    )


def test_squad_offline_doc_with_another_layout_is_refused() -> None:
    document = {"id": "x", "query": "Passage: p\nQ: q\nA:", "answers_text": ["p"]}
    with pytest.raises(SpecError, match="Background"):
        qa._squad_offline_item(document, 0)


def test_squad_hub_row_uses_the_annotated_start() -> None:
    row = {
        "id": "h1",
        "context": PASSAGE,
        "question": "When did Harvard win?",
        "answers": {"text": ["2003", " 2003"], "answer_start": [77, 76]},
    }
    assert qa._squad_hub_item(row, 0) == QAItem(
        "h1", "When did Harvard win?", ("2003",), PASSAGE, (77, 81)
    )
    wrong_start = {**row, "answers": {"text": ["June"], "answer_start": [3]}}
    assert qa._squad_hub_item(wrong_start, 0).answer_span == (56, 60)  # found instead


def test_trivia_qa_rows() -> None:
    answer = {"aliases": ["Sunset Blvd", "Sunset Boulevard", "Sunset Blvd"], "value": "x"}
    row = {"question_id": "tc_1", "question": "Which road?", "answer": answer}
    assert qa._trivia_qa_offline_item(row, 7) == QAItem(
        "tc_1", "Which road?", ("Sunset Blvd", "Sunset Boulevard")
    )
    pages = {"wiki_context": ["No answer here.", "It ran on sunset boulevard daily."]}
    item = qa._trivia_qa_hub_item({**row, "entity_pages": pages}, 7)
    assert item.passage == "It ran on sunset boulevard daily." and item.answer_span == (10, 26)
    bare = qa._trivia_qa_hub_item({**row, "entity_pages": {"wiki_context": []}}, 7)
    assert bare.passage == "" and bare.answer_span is None


def test_nq_open_row_is_named_by_position() -> None:
    row = {"question": "who wrote it", "answer": ["Ann", "Ann", "Bo"]}
    assert qa._nq_open_item(row, 42) == QAItem("00042", "who wrote it", ("Ann", "Bo"))


@pytest.mark.parametrize(
    "parses",
    [
        # A list of records, as the JSON file has it ...
        [
            {"Parse-Id": "p1", "Answers": [{"AnswersMid": ["m1"], "AnswersName": ["Paris"]}]},
            {"Parse-Id": "p2", "Answers": [{"AnswersMid": ["m2"], "AnswersName": ["Lutetia"]}]},
        ],
        # ... or a record of lists, as `datasets` returns a sequence of records.
        {
            "Parse-Id": ["p1", "p2"],
            "Answers": [
                {"AnswersMid": ["m1"], "AnswersName": [["Paris"]]},
                {"AnswersMid": ["m2"], "AnswersName": [["Lutetia", "Paris"]]},
            ],
        },
    ],
)
def test_freebaseqa_answers_are_flattened(parses: object) -> None:
    row = {"Question-ID": "FreebaseQA-eval-1", "RawQuestion": "Capital?", "Parses": parses}
    assert qa._freebaseqa_item(row, 0).aliases == ("Paris", "Lutetia")


def test_demonstrations_are_the_first_items_by_id() -> None:
    items = [QAItem(f"q{index}", "?", ("a",)) for index in (9, 3, 7, 1, 5, 8, 2)]
    assert [item.id for item in demonstrations("toy", items, 3)] == ["q1", "q2", "q3"]
    with pytest.raises(SpecError, match="6 shots"):
        demonstrations("toy", items, 6)


def test_registry_names() -> None:
    assert QA_DATASETS.names() == ["freebaseqa", "nq_open", "squad", "trivia_qa"]


@pytest.mark.integration
def test_squad_offline() -> None:
    data = load_qa("squad", "offline", "0.9.0")
    assert len(data.items) == 995 and len(data.demonstrations) == 5
    assert not {item.id for item in data.demonstrations} & {item.id for item in data.items}
    assert [item.id for item in data.items] == sorted(item.id for item in data.items)
    found = [item for item in data.items if item.answer_span is not None]
    assert len(found) >= 0.99 * len(data.items)
    for item in found:
        start, end = item.answer_span
        assert item.passage[start:end].lower() in {alias.lower() for alias in item.aliases}


@pytest.mark.integration
def test_trivia_qa_and_nq_open_offline() -> None:
    trivia = load_qa("trivia_qa", "offline", "0.9.0")
    assert len(trivia.items) == 7993 - 5
    assert all(item.aliases and not item.passage for item in trivia.items)
    nq_open = load_qa("nq_open", "offline", "0.9.0")
    assert len(nq_open.items) == 3610 - 5 and all(item.aliases for item in nq_open.items)


@pytest.mark.integration
def test_freebaseqa_is_not_offline() -> None:
    with pytest.raises(SpecError, match="FreebaseQA is not shipped offline.*trivia_qa or nq_open"):
        load_qa("freebaseqa", "offline", "0.9.0")


@pytest.mark.integration
def test_pinned_offline_version_must_match() -> None:
    with pytest.raises(SpecError, match="pins 0.1.0"):
        load_qa("nq_open", "offline", "0.1.0")
