"""lm-eval's zero-shot prompts, written out by hand from its task YAMLs, and the offline sets."""

from __future__ import annotations

from typing import Any

import pytest

from jdspec.data.benchmarks import BENCHMARKS, ChoiceDoc, load_docs
from jdspec.errors import SpecError


def build(name: str, row: dict[str, Any]) -> ChoiceDoc:
    return BENCHMARKS.get(name).to_doc(row, "doc-1")


def test_piqa_prompt() -> None:
    row = {"goal": "How to boil water?", "sol1": "Use a pot.", "sol2": "Use a sieve.", "label": 1}
    assert build("piqa", row) == ChoiceDoc(
        "doc-1",
        ("Question: How to boil water?\nAnswer:",),
        (" Use a pot.", " Use a sieve."),
        ("Use a pot.", "Use a sieve."),
        1,
    )


def test_hellaswag_preprocess_and_capitalize() -> None:
    row = {
        "activity_label": "Home and Garden",
        "ctx_a": "[header] How to clean a grill [title] Heat the grill.",
        "ctx_b": "SCRUB the grates",
        "endings": ["  Use a [step] brush.  ", "Rinse   it.", "Wait.", "Stop [title] now"],
        "label": "2",
    }
    assert build("hellaswag", row) == ChoiceDoc(
        "doc-1",
        ("Home and Garden: How to clean a grill. Heat the grill. Scrub the grates",),
        (" Use a brush.", " Rinse  it.", " Wait.", " Stop. now"),
        ("Use a brush.", "Rinse  it.", "Wait.", "Stop. now"),
        2,
    )


def test_hellaswag_reads_python_repr_columns() -> None:
    row = {
        "activity_label": "Sports",
        "ctx_a": "A man runs.",
        "ctx_b": "",
        "endings": "['He jumps.', 'He sits.']",
        "label": "0",
    }
    doc = build("hellaswag", row)
    assert doc.contexts == ("Sports: A man runs.",)  # preprocess strips the empty ctx_b's space
    assert doc.choices == ("He jumps.", "He sits.") and doc.gold == 0


@pytest.mark.parametrize("name", ["arc_easy", "arc_challenge"])
def test_arc_prompt_with_numeric_labels(name: str) -> None:
    row = {
        "id": "Mercury_1",
        "question": "Which is a metal?",
        "choices": {"text": ["wood", "iron", "glass"], "label": ["1", "2", "3"]},
        "answerKey": "2",
    }
    assert build(name, row) == ChoiceDoc(
        "doc-1",
        ("Question: Which is a metal?\nAnswer:",),
        (" wood", " iron", " glass"),
        ("wood", "iron", "glass"),
        1,
    )


def test_openbookqa_prompt_is_the_bare_stem() -> None:
    row = {
        "id": "7-1",
        "question_stem": "The sun is",
        "choices": {"text": ["cold", "a star", "wet", "small"], "label": ["A", "B", "C", "D"]},
        "answerKey": " B",
    }
    assert build("openbookqa", row) == ChoiceDoc(
        "doc-1",
        ("The sun is",),
        (" cold", " a star", " wet", " small"),
        ("cold", "a star", "wet", "small"),
        1,
    )


def test_winogrande_partial_scoring() -> None:
    row = {
        "sentence": "The trophy didn't fit in the suitcase because the _ was too big. ",
        "option1": "trophy",
        "option2": "suitcase",
        "answer": "2",
    }
    contexts = (
        "The trophy didn't fit in the suitcase because the trophy",
        "The trophy didn't fit in the suitcase because the suitcase",
    )
    assert build("winogrande", row) == ChoiceDoc("doc-1", contexts, (" was too big.",), contexts, 1)


def test_commonsense_qa_letters_prompt() -> None:
    row = {
        "id": "abc",
        "question": " Where do you keep milk? ",
        "choices": {
            "label": ["A", "B", "C", "D", "E"],
            "text": ["shelf", "oven", "fridge", "car", "bed"],
        },
        "answerKey": "C",
    }
    assert build("commonsense_qa", row) == ChoiceDoc(
        "doc-1",
        (
            "Question: Where do you keep milk?\nA. shelf\nB. oven\nC. fridge\nD. car\nE. bed"
            "\nAnswer:",
        ),
        (" A", " B", " C", " D", " E"),
        ("A", "B", "C", "D", "E"),
        2,
    )


def test_gold_outside_the_choices_is_refused() -> None:
    with pytest.raises(ValueError, match="gold 2"):
        ChoiceDoc("x", ("c",), (" a", " b"), ("a", "b"), 2)


def test_unknown_benchmark_suggests_the_closest() -> None:
    with pytest.raises(SpecError, match="did you mean 'hellaswag'"):
        load_docs("helaswag", "offline", "0.9.0")


def test_pinned_offline_version_must_match() -> None:
    with pytest.raises(SpecError, match="pins 0.1.0"):
        load_docs("piqa", "offline", "0.1.0")


COUNTS = {
    "piqa": 1838,
    "hellaswag": 10042,
    "arc_easy": 570,
    "arc_challenge": 299,
    "openbookqa": 500,
    "winogrande": 1267,
    "commonsense_qa": 1221,
}


@pytest.mark.integration
@pytest.mark.parametrize(("name", "count"), COUNTS.items())
def test_offline_sets_load_in_file_order(name: str, count: int) -> None:
    docs = load_docs(name, "offline", "0.9.0")
    assert len(docs) == count
    assert len({doc.id for doc in docs}) == count
    assert all(0 <= doc.gold < len(doc.choices) for doc in docs)
    # Every gold position occurs: the labels were read, not defaulted.
    assert set(range(min(len(doc.choices) for doc in docs))) <= {doc.gold for doc in docs}


@pytest.mark.integration
def test_offline_ids_and_first_rows() -> None:
    assert load_docs("piqa", "offline", "0.9.0")[0].id == "00000"
    arc = load_docs("arc_easy", "offline", "0.9.0")[0]
    assert arc.id == "MCAS_2000_4_6" and arc.gold == 0
    assert arc.contexts == ("Question: Which technology was developed most recently?\nAnswer:",)
    hellaswag = load_docs("hellaswag", "offline", "0.9.0")[0]
    assert hellaswag.contexts == ("Roof shingle removal: A man is sitting on a roof. He",)
    assert hellaswag.gold == 3
