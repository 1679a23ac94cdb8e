"""Multiple-choice data sets as one record type, from the hub or the offline packages."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from jdspec.data.sources import load_hub_rows, load_offline_rows, require_offline_version
from jdspec.errors import SpecError
from jdspec.registry import Registry

DEMONSTRATION_POOL = 5  # sets without a dev split give their first 5 items (by id) to demos


@dataclass(frozen=True)
class MCQItem:
    """One question: its options, the gold index, a subject for prompts, an optional passage."""

    id: str
    question: str
    choices: tuple[str, ...]
    answer: int
    subject: str
    passage: str = ""


@dataclass(frozen=True)
class MCQData:
    """Evaluation items, and demonstrations by subject (never among the evaluation items)."""

    items: tuple[MCQItem, ...]
    demonstrations: dict[str, tuple[MCQItem, ...]]

    def demonstrations_for(self, item: MCQItem, shots: int) -> tuple[MCQItem, ...]:
        pool = self.demonstrations.get(item.subject, ())
        if len(pool) < shots:
            raise SpecError(f"{shots} shots asked but subject {item.subject!r} has {len(pool)}")
        return pool[:shots]


@dataclass(frozen=True)
class MCQSource:
    """How to read one data set: its offline folders, its hub location, its row adapter."""

    subjects: Callable[[], list[str]]
    offline_path: Callable[[str, str], str]  # (subject, split) -> folder under hf_datasets/
    hub_id: str
    hub_config: Callable[[str], str | None]
    eval_split: str
    demo_split: str | None  # None: the first DEMONSTRATION_POOL items of eval_split
    to_item: Callable[[dict[str, Any], int, str], MCQItem]  # (row, index, subject)


MCQ_DATASETS: Registry[MCQSource] = Registry("multiple-choice data set")


def load_mcq(name: str, source: str, revision: str) -> MCQData:
    """All evaluation items and demonstrations of a registered data set."""
    definition = MCQ_DATASETS.get(name)
    items: list[MCQItem] = []
    demonstrations: dict[str, tuple[MCQItem, ...]] = {}
    for subject in definition.subjects():
        rows = _rows(definition, source, revision, subject, definition.eval_split)
        subject_items = [definition.to_item(row, i, subject) for i, row in enumerate(rows)]
        if definition.demo_split is None:
            subject_items.sort(key=lambda item: item.id)
            demonstrations[subject] = tuple(subject_items[:DEMONSTRATION_POOL])
            subject_items = subject_items[DEMONSTRATION_POOL:]
        else:
            demo_rows = _rows(definition, source, revision, subject, definition.demo_split)
            demo = [definition.to_item(r, i, subject) for i, r in enumerate(demo_rows)]
            demonstrations[subject] = tuple(demo)
        items.extend(subject_items)
    return MCQData(tuple(sorted(items, key=lambda item: item.id)), demonstrations)


def _rows(
    definition: MCQSource, source: str, revision: str, subject: str, split: str
) -> list[dict[str, Any]]:
    if source == "hub":
        return load_hub_rows(definition.hub_id, definition.hub_config(subject), split, revision)
    require_offline_version(revision)
    return load_offline_rows(definition.offline_path(subject, split))


MMLU_SUBJECTS = [
    "abstract_algebra",
    "anatomy",
    "astronomy",
    "business_ethics",
    "clinical_knowledge",
    "college_biology",
    "college_chemistry",
    "college_computer_science",
    "college_mathematics",
    "college_medicine",
    "college_physics",
    "computer_security",
    "conceptual_physics",
    "econometrics",
    "electrical_engineering",
    "elementary_mathematics",
    "formal_logic",
    "global_facts",
    "high_school_biology",
    "high_school_chemistry",
    "high_school_computer_science",
    "high_school_european_history",
    "high_school_geography",
    "high_school_government_and_politics",
    "high_school_macroeconomics",
    "high_school_mathematics",
    "high_school_microeconomics",
    "high_school_physics",
    "high_school_psychology",
    "high_school_statistics",
    "high_school_us_history",
    "high_school_world_history",
    "human_aging",
    "human_sexuality",
    "international_law",
    "jurisprudence",
    "logical_fallacies",
    "machine_learning",
    "management",
    "marketing",
    "medical_genetics",
    "miscellaneous",
    "moral_disputes",
    "moral_scenarios",
    "nutrition",
    "philosophy",
    "prehistory",
    "professional_accounting",
    "professional_law",
    "professional_medicine",
    "professional_psychology",
    "public_relations",
    "security_studies",
    "sociology",
    "us_foreign_policy",
    "virology",
    "world_religions",
]


def _mmlu_item(row: dict[str, Any], index: int, subject: str) -> MCQItem:
    return MCQItem(
        f"{subject}/{index:05d}",
        row["question"],
        tuple(row["choices"]),
        int(row["answer"]),
        subject,
    )


def _labelled_item(
    question_key: str, subject: str
) -> Callable[[dict[str, Any], int, str], MCQItem]:
    """ARC and OpenBookQA rows: choices {text, label} and an answerKey label."""

    def to_item(row: dict[str, Any], index: int, _subject: str) -> MCQItem:
        labels = list(row["choices"]["label"])
        return MCQItem(
            str(row["id"]),
            row[question_key],
            tuple(row["choices"]["text"]),
            labels.index(row["answerKey"]),
            subject,
        )

    return to_item


def _sciq_item(row: dict[str, Any], index: int, subject: str) -> MCQItem:
    """SciQ stores the answer apart from three distractors; order them by a hash of the question.

    A fixed gold position would let a model win by position, so the four options are shuffled
    with a seed derived from the question text: the same on every machine and run.
    """
    options = [row["distractor1"], row["distractor2"], row["distractor3"], row["correct_answer"]]
    seed = int(hashlib.sha256(row["question"].encode()).hexdigest()[:8], 16)
    random.Random(seed).shuffle(options)
    return MCQItem(
        f"{index:05d}",
        row["question"],
        tuple(options),
        options.index(row["correct_answer"]),
        subject,
        row["support"].strip(),
    )


MCQ_DATASETS.register("mmlu")(
    MCQSource(
        subjects=lambda: list(MMLU_SUBJECTS),
        offline_path=lambda subject, split: f"hails/mmlu_no_train/{subject}/{split}",
        hub_id="cais/mmlu",
        hub_config=lambda subject: subject,
        eval_split="test",
        demo_split="dev",
        to_item=_mmlu_item,
    )
)
for _name, _folder, _config in (
    ("arc_easy", "ARC-Easy", "ARC-Easy"),
    ("arc_challenge", "ARC-Challenge", "ARC-Challenge"),
):
    MCQ_DATASETS.register(_name)(
        MCQSource(
            subjects=lambda: ["science"],
            offline_path=lambda subject, split, folder=_folder: f"ai2_arc/{folder}/{split}",
            hub_id="allenai/ai2_arc",
            hub_config=lambda subject, config=_config: config,
            eval_split="validation",
            demo_split=None,
            to_item=_labelled_item("question", "science"),
        )
    )
MCQ_DATASETS.register("openbookqa")(
    MCQSource(
        subjects=lambda: ["science"],
        offline_path=lambda subject, split: f"openbookqa/main/{split}",
        hub_id="allenai/openbookqa",
        hub_config=lambda subject: "main",
        eval_split="validation",
        demo_split=None,
        to_item=_labelled_item("question_stem", "science"),
    )
)
MCQ_DATASETS.register("sciq")(
    MCQSource(
        subjects=lambda: ["science"],
        offline_path=lambda subject, split: f"sciq/none/{split}",
        hub_id="allenai/sciq",
        hub_config=lambda subject: None,
        eval_split="validation",
        demo_split=None,
        to_item=_sciq_item,
    )
)
