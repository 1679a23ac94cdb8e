"""Linear mode connectivity: interpolation, evenly spaced alphas, barriers, the evaluated curve."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from jdspec.finetune.connectivity import (
    accuracy_barrier,
    alphas,
    connectivity_curve,
    interpolate,
    loss_barrier,
)
from jdspec.finetune.train import evaluate, load_encoder
from tests.helpers import tiny_task

CPU = torch.device("cpu")
DATA = tiny_task("classification")


def _states(folder: Path) -> tuple[torch.nn.Module, dict, dict]:
    """Two end points that differ in every floating tensor: heads drawn under different seeds,
    the encoder of the second shifted by noise."""
    start_model, _ = load_encoder(str(folder), None, DATA, 1, CPU)
    end_model, _ = load_encoder(str(folder), None, DATA, 2, CPU)
    generator = torch.Generator().manual_seed(0)
    end = {
        name: value + 0.05 * torch.randn(value.shape, generator=generator)
        if value.is_floating_point()
        else value
        for name, value in end_model.state_dict().items()
    }
    return start_model, start_model.state_dict(), end


def test_alphas_are_exact_decimals() -> None:
    assert [repr(alpha) for alpha in alphas(11)] == [f"0.{i}" for i in range(10)] + ["1.0"]
    assert alphas(2) == (0.0, 1.0)
    assert alphas(5) == (0.0, 0.25, 0.5, 0.75, 1.0)


def test_interpolate_is_exact_at_the_end_points(tiny_bert_dir: Path) -> None:
    _, start, end = _states(tiny_bert_dir)
    for alpha, expected in ((0.0, start), (1.0, end)):
        state = interpolate(start, end, alpha)
        for name, value in state.items():
            assert torch.equal(value, expected[name]), (alpha, name)
    middle = interpolate(start, end, 0.5)
    name = "classifier.weight"
    reference = (start[name].double() + end[name].double()) / 2
    assert torch.allclose(middle[name].double(), reference, atol=1e-7)
    assert middle[name].dtype == torch.float32


def test_interpolate_requires_equal_integer_buffers() -> None:
    start = {"weight": torch.zeros(2), "position_ids": torch.arange(4)}
    end = {"weight": torch.ones(2), "position_ids": torch.arange(4)}
    assert torch.equal(interpolate(start, end, 0.25)["position_ids"], torch.arange(4))
    end["position_ids"] = torch.arange(1, 5)
    with pytest.raises(ValueError, match="position_ids"):
        interpolate(start, end, 0.25)


@pytest.mark.parametrize("value", [0.3, 0.1, 2.718281828, 1e-8])
def test_identical_end_points_have_zero_barrier(value: float) -> None:
    """The plain (1 - a) * c + a * c leaves 1.4e-17 for c = 0.1 and 4.4e-16 for c = 2.718281828."""
    points = alphas(11)
    assert loss_barrier(points, [value] * 11) == 0.0
    assert accuracy_barrier(points, [value] * 11) == 0.0


def test_hand_worked_barriers() -> None:
    # the line joins 1.0 and 0.5, so it is 0.75 at alpha 0.5, where the loss is 2.0
    assert loss_barrier((0.0, 0.5, 1.0), (1.0, 2.0, 0.5)) == 1.25
    # accuracy: the line is 0.625 at alpha 0.5, where accuracy is 0.25
    assert accuracy_barrier((0.0, 0.5, 1.0), (0.75, 0.25, 0.5)) == 0.375
    # a curve below the line (a convex loss basin) has no barrier: the end points give 0
    assert loss_barrier((0.0, 0.25, 0.5, 0.75, 1.0), (1.0, 0.5, 0.25, 0.5, 1.0)) == 0.0
    assert accuracy_barrier((0.0, 0.5, 1.0), (0.5, 0.9, 0.7)) == 0.0


def test_barriers_need_both_end_points() -> None:
    with pytest.raises(ValueError, match="alpha 0 and alpha 1"):
        loss_barrier((0.0, 0.5), (1.0, 2.0))


def test_connectivity_curve_evaluates_each_interpolated_state(tiny_bert_dir: Path) -> None:
    model, start, end = _states(tiny_bert_dir)
    _, tokenizer = load_encoder(str(tiny_bert_dir), None, DATA, 1, CPU)

    def evaluate_at(candidate: torch.nn.Module) -> object:
        return evaluate(candidate, tokenizer, DATA, DATA.test, 32, 16, None)

    aliases = start  # model.state_dict() shares the model's storage
    start = {name: value.clone() for name, value in start.items()}
    curve = connectivity_curve(model, aliases, end, alphas(4), evaluate_at)
    assert len(curve) == 4
    for alpha, evaluation in zip(alphas(4), curve, strict=True):
        model.load_state_dict(interpolate(start, end, alpha))
        assert evaluation == evaluate_at(model), alpha
    assert len({evaluation.scores for evaluation in curve}) == 4
