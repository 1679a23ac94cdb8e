"""Spec loading: every shipped spec validates; bad specs name file, line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from jdspec.compress.core import NM
from jdspec.errors import SpecError
from jdspec.spec import load_spec

SPECS = sorted((Path(__file__).parent.parent / "specs").glob("*.yaml"))

GOOD = """\
name: good
models:
  - source: hub
    id: lmsys/vicuna-7b-v1.3
compressors:
  - method: magnitude
    sweep:
      sparsity: [0.1, 0.5]
  - method: magnitude
    sweep:
      mask_structure: ["7:8", "2:8"]
spectrum:
  setting: k_shot
  dataset: {name: mmlu, source: hub}
  levels: [{shots: 5}, {shots: 0}]
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("path", SPECS, ids=[p.name for p in SPECS])
def test_every_shipped_spec_validates(path: Path) -> None:
    assert load_spec(path).name


def test_sweeps_expand_in_order(tmp_path: Path) -> None:
    spec = load_spec(_write(tmp_path, GOOD))
    assert [c.sparsity for c in spec.compressors[:2]] == [0.1, 0.5]
    assert [c.mask_structure for c in spec.compressors[2:]] == [NM(7, 8), NM(2, 8)]
    assert spec.evaluation.n_examples == 100
    assert spec.reported_metrics() == ("accuracy",)


def _error(tmp_path: Path, text: str) -> str:
    with pytest.raises(SpecError) as raised:
        load_spec(_write(tmp_path, text))
    return str(raised.value)


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "sparsity: [0.1, 0.5]",
            "sparsity: [0.1, 1.5]",
            ["line 8", "compressors[0].sweep.sparsity[1]", "less than 1", "1.5"],
        ),
        (
            '["7:8", "2:8"]',
            '["9:8"]',
            ["line 11", "compressors[1].sweep.mask_structure[0]", "1 <= N <= M", "9:8"],
        ),
        (
            "  - method: magnitude\n    sweep:\n      sparsity",
            "  - method: wand\n    sweep:\n      sparsity",
            ["line 6", "compressors[0].method", "unknown method 'wand'"],
        ),
        (
            "{name: mmlu, source: hub}",
            "{name: mmlux, source: hub}",
            ["line 14", "spectrum.dataset.name", "unknown data set 'mmlux'", "did you mean 'mmlu'"],
        ),
        (
            "levels: [{shots: 5}, {shots: 0}]",
            "levels: [{shots: five}]",
            ["line 15", "spectrum.levels[0].shots", "valid integer", "five"],
        ),
        (
            "    id: lmsys/vicuna-7b-v1.3",
            "    id: lmsys/vicuna-7b-v1.3\n    revison: main",
            ["line 5", "models[0].revison", "unknown field"],
        ),
        (
            "setting: k_shot",
            "setting: kshot",
            ["line 13", "spectrum.setting", "unknown setting 'kshot'", "did you mean 'k_shot'"],
        ),
    ],
)
def test_bad_specs_name_line_and_field(
    tmp_path: Path, old: str, new: str, expected: list[str]
) -> None:
    assert old in GOOD
    message = _error(tmp_path, GOOD.replace(old, new))
    assert message.startswith(str(tmp_path / "spec.yaml"))
    for part in expected:
        assert part in message, message


def test_unknown_method_without_sweep_suggests_closest(tmp_path: Path) -> None:
    message = _error(
        tmp_path,
        GOOD.replace(
            "  - method: magnitude\n    sweep:\n      sparsity",
            "  - method: magnitud\n    sweep:\n      sparsity",
            1,
        ).replace(
            "  - method: magnitude\n    sweep:\n      mask",
            "  - method: magnitudo\n    scope: layer\n    sweep:\n      mask",
        ),
    )
    assert "did you mean 'magnitude'" in message


def test_sweep_of_a_field_that_is_no_strength(tmp_path: Path) -> None:
    message = _error(tmp_path, GOOD.replace("sparsity: [0.1, 0.5]", "scope: [layer, global]"))
    assert "compressors[0].sweep.scope" in message and "sweeps one of sparsity, mask_structure" in (
        message
    )


def test_both_structures_is_an_error(tmp_path: Path) -> None:
    text = GOOD.replace(
        "    sweep:\n      sparsity: [0.1, 0.5]",
        "    mask_structure: '2:4'\n    sweep:\n      sparsity: [0.1, 0.5]",
    )
    message = _error(tmp_path, text)
    assert "compressors[0]" in message and "exactly one of sparsity" in message


def test_empty_sweep_and_empty_levels(tmp_path: Path) -> None:
    assert "non-empty list" in _error(tmp_path, GOOD.replace("[0.1, 0.5]", "[]"))
    assert "spectrum.levels" in _error(tmp_path, GOOD.replace("[{shots: 5}, {shots: 0}]", "[]"))


def test_yaml_syntax_error_has_line(tmp_path: Path) -> None:
    message = _error(tmp_path, GOOD.replace("levels: [{shots: 5}, {shots: 0}]", "levels: [{shots"))
    assert "not valid YAML" in message and "line" in message


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="no such spec file"):
        load_spec(tmp_path / "absent.yaml")
    with pytest.raises(SpecError, match="is a directory"):
        load_spec(tmp_path)


def test_repeated_level_and_unknown_metric(tmp_path: Path) -> None:
    assert "shots repeated: 5" in _error(
        tmp_path, GOOD.replace("[{shots: 5}, {shots: 0}]", "[{shots: 5}, {shots: 5}]")
    )
    assert "unknown metric 'acc'" in _error(tmp_path, GOOD + "metrics: [acc]\n")


def test_local_model_path_is_relative_to_the_spec(tmp_path: Path) -> None:
    text = GOOD.replace(
        "  - source: hub\n    id: lmsys/vicuna-7b-v1.3", "  - source: local\n    path: models/mine"
    )
    spec = load_spec(_write(tmp_path, text))
    assert spec.models[0].path == str((tmp_path / "models" / "mine").resolve())
