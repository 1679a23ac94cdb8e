"""Shared fixtures: a tiny local model folder and a factory of spec files that use it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tests.helpers import save_tiny_model, tiny_bert_folder


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_bert_folder(tmp_path_factory.mktemp("tiny-bert"))


def tiny_spec(model_dir: Path, **overrides: object) -> dict:
    """A small but complete study on the tiny model: dense + 2 sparsities + 2:4, 2 levels."""
    spec = {
        "name": "tiny",
        "description": "tiny random Llama on 12 ARC-Easy questions",
        "models": [{"source": "local", "path": str(model_dir)}],
        "compressors": [
            {"method": "magnitude", "scope": "layer", "sweep": {"sparsity": [0.3, 0.6]}},
            {"method": "magnitude", "mask_structure": "2:4"},
        ],
        "spectrum": {
            "setting": "option_count",
            "dataset": {"name": "arc_easy"},
            "answer_format": "cloze",
            "levels": [{"option_count": 2}, {"option_count": 4}],
        },
        "evaluation": {"n_examples": 12, "batch_size": 4},
    }
    spec.update(overrides)
    return spec


@pytest.fixture
def write_spec(tmp_path: Path, tiny_model_dir: Path) -> Callable[..., Path]:
    """Write a tiny spec (with overrides) to a YAML file and return its path."""

    def write(name: str = "tiny.yaml", **overrides: object) -> Path:
        path = tmp_path / name
        path.write_text(yaml.safe_dump(tiny_spec(tiny_model_dir, **overrides), sort_keys=False))
        return path

    return write
