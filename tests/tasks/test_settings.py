"""Settings 3, 5 and 6 as specs: their levels, difficulties and errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from jdspec.errors import SpecError
from jdspec.spec import load_spec

HEAD = """\
name: s
models: [{source: hub, id: lmsys/vicuna-7b-v1.3}]
compressors: [{method: magnitude, sparsity: 0.5}]
"""

CONTEXT = """\
spectrum:
  setting: context_length
  dataset: {name: squad}
  levels:
    - closed_book: true
    - context_percent: 100
    - context_percent: 20
"""

HUMAN_GAP = """\
spectrum:
  setting: human_gap
  levels:
    - {task: piqa, human: 0.949, human_source: Bisk et al. 2020}
    - {task: hellaswag, human: 0.956, human_source: Zellers et al. 2019, difficulty: 3}
"""

FACTOID = """\
spectrum:
  setting: factoid_vs_mcq
  factoid: {dataset: {name: trivia_qa}}
  multiple_choice: {dataset: {name: mmlu}}
"""


def _load(tmp_path: Path, spectrum: str):
    path = tmp_path / "spec.yaml"
    path.write_text(HEAD + spectrum)
    return load_spec(path)


def _error(tmp_path: Path, spectrum: str) -> str:
    with pytest.raises(SpecError) as caught:
        _load(tmp_path, spectrum)
    return str(caught.value)


def test_context_levels_get_harder_as_context_shrinks(tmp_path: Path) -> None:
    levels = _load(tmp_path, CONTEXT).spectrum.expand(10, 0)
    assert [(level.label, level.difficulty) for level in levels] == [
        ("closed book", 100.0),
        ("100% context", 0.0),
        ("20% context", 80.0),
    ]
    assert [level.config.context_percent for level in levels] == [None, 100, 20]
    assert all(level.config.needs_passage for level in levels)
    assert len({level.config.model_dump_json() for level in levels}) == 3


def test_a_context_level_is_closed_book_or_a_percent(tmp_path: Path) -> None:
    both = CONTEXT.replace("- closed_book: true", "- {closed_book: true, context_percent: 50}")
    assert "give either closed_book: true or context_percent" in _error(tmp_path, both)
    zero = CONTEXT.replace("context_percent: 20", "context_percent: 0")
    message = _error(tmp_path, zero)
    assert "line 10" in message and "spectrum.levels[2].context_percent" in message
    unknown = CONTEXT.replace("name: squad", "name: squadd")
    assert "did you mean 'squad'" in _error(tmp_path, unknown)


def test_human_gap_levels_wait_for_the_dense_score(tmp_path: Path) -> None:
    spec = _load(tmp_path, HUMAN_GAP)
    piqa, hellaswag = spec.spectrum.expand(None, 0)
    assert (piqa.difficulty, piqa.human) == (None, 0.949)
    assert (hellaswag.difficulty, hellaswag.human) == (3.0, None)
    assert piqa.config.kind == "benchmark" and piqa.config.task == "piqa"
    assert spec.reported_metrics() == ("accuracy", "accuracy_norm")


def test_human_gap_needs_a_source_and_a_known_task(tmp_path: Path) -> None:
    assert "human_source" in _error(
        tmp_path, HUMAN_GAP.replace(", human_source: Bisk et al. 2020", "")
    )
    assert "did you mean 'piqa'" in _error(tmp_path, HUMAN_GAP.replace("task: piqa", "task: piq"))
    assert "human" in _error(tmp_path, HUMAN_GAP.replace("human: 0.949", "human: 94.9"))


def test_factoid_and_choice_levels_share_accuracy(tmp_path: Path) -> None:
    spec = _load(tmp_path, FACTOID)
    factoid, choice = spec.spectrum.expand(50, 3)
    assert (factoid.label, factoid.difficulty) == ("factoid (trivia_qa)", 1.0)
    assert (choice.label, choice.difficulty) == ("multiple choice (mmlu)", 0.0)
    assert factoid.config.kind == "qa" and factoid.config.context_percent is None
    assert choice.config.kind == "mcq" and choice.config.option_count == 4
    assert spec.reported_metrics() == ("accuracy",)
