"""Planning: keys are stable and pinned, the dense baseline is added once, jobs group cells."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from jdspec.compress import COMPRESSORS
from jdspec.eval.requests import ENGINE_VERSION
from jdspec.plan import (
    Cell,
    Job,
    attach_statuses,
    canonical_json,
    content_hash,
    count_statuses,
    expand,
)
from jdspec.spec import Spec, load_spec
from jdspec.tasks import SETTINGS

SPECS = Path(__file__).parent.parent / "specs"

SPEC = """\
name: golden
models:
  - source: hub
    id: lmsys/vicuna-7b-v1.3
    revision: main
compressors:
  - method: none
  - method: magnitude
    sweep:
      sparsity: [0.5, 0.5, 0.25]
  - method: magnitude
    mask_structure: "2:8"
spectrum:
  setting: option_count
  dataset: {name: mmlu, source: hub}
  levels: [{option_count: 4}, {option_count: 2}]
evaluation: {n_examples: 50, seed: 3, batch_size: 4}
"""

# Pinned: these change only with a VERSION bump of a compressor, a task or the key layout.
GOLDEN_KEYS = {
    ("dense", 0.0, "4 options"): "439f29e176d1b573096d336606fb24b3b9b2ab7e738152629f3ec1c0e2c9e309",
    (
        "magnitude N:8",
        0.75,
        "2 options",
    ): "03f3986a760c8ee5ec7dd02701dc7cfc7dbc0868a659bf0213287babad6fffa6",
}


def _spec(tmp_path: Path, text: str = SPEC):
    path = tmp_path / "golden.yaml"
    path.write_text(text)
    return load_spec(path)


def test_dense_added_once_and_duplicates_merged(tmp_path: Path) -> None:
    jobs = expand(_spec(tmp_path))
    families = [(job.compressor.family(), job.compressor.strength()) for job in jobs]
    assert families == [
        ("dense", 0.0),
        ("magnitude", 0.5),
        ("magnitude", 0.25),
        ("magnitude N:8", 0.75),
    ]
    assert all(len(job.cells) == 2 for job in jobs)
    assert all(cell.variant_hash == job.variant_hash for job in jobs for cell in job.cells)


def test_dense_added_when_not_listed(tmp_path: Path) -> None:
    jobs = expand(_spec(tmp_path, SPEC.replace("  - method: none\n", "")))
    assert jobs[0].compressor.method == "none"


def test_planning_twice_gives_the_same_keys(tmp_path: Path) -> None:
    first = [c.cell_hash for job in expand(_spec(tmp_path)) for c in job.cells]
    second = [c.cell_hash for job in expand(_spec(tmp_path)) for c in job.cells]
    assert first == second and len(set(first)) == len(first) == 8


def test_golden_keys(tmp_path: Path) -> None:
    cells = {
        (c.compressor.family(), c.compressor.strength(), c.level.label): c.cell_hash
        for job in expand(_spec(tmp_path))
        for c in job.cells
    }
    for name, key in GOLDEN_KEYS.items():
        assert cells[name] == key, name


def test_key_holds_what_changes_results_and_not_difficulty(tmp_path: Path) -> None:
    base = expand(_spec(tmp_path))[0].cells[0]
    for old, new in [
        ("seed: 3", "seed: 4"),
        ("batch_size: 4", "batch_size: 8"),
        ("revision: main", "revision: abc123"),
        ("n_examples: 50", "n_examples: 51"),
    ]:
        changed = expand(_spec(tmp_path, SPEC.replace(old, new)))[0].cells[0]
        assert changed.cell_hash != base.cell_hash, old
    explicit = SPEC.replace(
        "{option_count: 4}, {option_count: 2}",
        "{option_count: 4, difficulty: 9}, {option_count: 2, difficulty: 1}",
    )
    relabelled = expand(_spec(tmp_path, explicit))[0].cells[0]
    assert relabelled.cell_hash == base.cell_hash and relabelled.level.difficulty == 9


def test_canonical_json_normalises_floats_and_order() -> None:
    assert canonical_json({"b": 0.1 + 0.2, "a": [1, 2.0]}) == '{"a":[1,2.0],"b":0.3}'
    assert content_hash({"x": 1, "y": 2}) == content_hash({"y": 2, "x": 1})


def test_statuses_from_the_store(tmp_path: Path) -> None:
    jobs = expand(_spec(tmp_path))
    cells = [c for job in jobs for c in job.cells]
    planned = attach_statuses(jobs, {cells[0].cell_hash: "done", cells[1].cell_hash: "failed"})
    assert count_statuses(planned) == {"new": 6, "done": 1, "failed": 1}
    assert planned[0].pending(retry_failed=False) == ()
    assert planned[0].pending(retry_failed=True) == (cells[1],)


def test_an_engine_change_changes_every_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Scores move when the engine batches differently, so stored cells must not be reused."""
    before = [c.cell_hash for job in expand(_spec(tmp_path)) for c in job.cells]
    monkeypatch.setattr("jdspec.plan.ENGINE_VERSION", 99)
    after = [c.cell_hash for job in expand(_spec(tmp_path)) for c in job.cells]
    assert not set(before) & set(after)


def _reference_key(spec: Spec, job: Job, cell: Cell) -> dict[str, Any]:
    """A cell's key built whole, as one dict, the way keys were first built: the planner joins
    the same key from parts normalised once each, and must give the same text."""
    level = cell.level
    return {
        "model": job.model_ref,
        "compressor": {
            **job.compressor.model_dump(mode="json"),
            "version": COMPRESSORS.get(job.compressor.method).version,
        },
        "calibration": None,
        "dtype": spec.evaluation.dtype,
        "level": {
            "setting": level.setting,
            "setting_version": SETTINGS.get(level.setting).version,
            **level.config.model_dump(mode="json"),
        },
        "seed": spec.evaluation.seed,
        "batch_size": spec.evaluation.batch_size,
        "engine": ENGINE_VERSION,
    }


VARIANT_FIELDS = ("model", "compressor", "calibration", "dtype")


@pytest.mark.parametrize(
    "name", ["golden", "transfer_modes-offline.yaml", "lmc-offline.yaml", "setting5-offline.yaml"]
)
def test_joined_keys_equal_keys_built_whole(tmp_path: Path, name: str) -> None:
    """Fine-tuning settings too: a level per training seed and transfer mode."""
    spec = _spec(tmp_path) if name == "golden" else load_spec(SPECS / name)
    for job in expand(spec):
        for cell in job.cells:
            key = _reference_key(spec, job, cell)
            assert cell.key_json == canonical_json(key)
            assert cell.cell_hash == content_hash(key)
            variant = {field: key[field] for field in VARIANT_FIELDS}
            assert cell.variant_hash == job.variant_hash == content_hash(variant)
            training = getattr(cell.level.config, "training", None)  # fine-tuning levels only
            mode = f" ({training.transfer})" if training and job.compressor.method != "none" else ""
            assert cell.family == job.compressor.family() + mode
            assert cell.seed == (training.seed if training else spec.evaluation.seed)
