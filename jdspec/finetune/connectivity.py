"""Linear mode connectivity (Appendix C): evaluate the straight line between two fine-tuned
states of one model and measure the barrier along it (Frankle et al., 2020)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from torch import nn

    from jdspec.finetune.train import PassScores


def interpolate(
    start: dict[str, torch.Tensor], end: dict[str, torch.Tensor], alpha: float
) -> dict[str, torch.Tensor]:
    """The state (1 - alpha) * start + alpha * end; exactly `start` at 0 and `end` at 1.

    Integer buffers (e.g. position ids) are not weights: they are taken from `start` and must be
    equal in both states.
    """
    if start.keys() != end.keys():
        raise ValueError("the end points are states of different models")
    state = {}
    for name, first in start.items():
        last = end[name]
        if first.is_floating_point():
            state[name] = (1 - alpha) * first + alpha * last
        else:
            if not torch.equal(first, last):
                raise ValueError(f"{name} differs between the end points")
            state[name] = first.clone()
    return state


def alphas(count: int) -> tuple[float, ...]:
    """`count` evenly spaced points from 0 to 1 inclusive, each i / (count - 1), so 11 gives the
    shortest decimals 0.0, 0.1, ..., 1.0 rather than accumulated sums like 0.30000000000000004."""
    if count < 2:
        raise ValueError(f"a line needs both end points: alpha_count >= 2, got {count}")
    return tuple(index / (count - 1) for index in range(count))


def loss_barrier(alpha_values: Sequence[float], losses: Sequence[float]) -> float:
    """The highest loss along the line above the straight line between the end points' losses.

    At alpha 0 the gap is exactly 0 (the line is evaluated as torch.lerp does, exact at both
    ends), so with the end points included the barrier is 0 or more: 0 means linearly connected.
    """
    first, last = _end_values(alpha_values, losses)
    return max(
        loss - _line(first, last, alpha) for alpha, loss in zip(alpha_values, losses, strict=True)
    )


def accuracy_barrier(alpha_values: Sequence[float], accuracies: Sequence[float]) -> float:
    """The deepest drop of accuracy along the line below the end points' straight line.

    As for the loss barrier, the end points contribute exactly 0, so it is 0 or more.
    """
    first, last = _end_values(alpha_values, accuracies)
    return max(
        _line(first, last, alpha) - accuracy
        for alpha, accuracy in zip(alpha_values, accuracies, strict=True)
    )


def connectivity_curve(
    model: nn.Module,
    start_state: dict[str, torch.Tensor],
    end_state: dict[str, torch.Tensor],
    alpha_values: Sequence[float],
    evaluate_at: Callable[[nn.Module], PassScores],
) -> list[PassScores]:
    """Load each interpolated state into `model` and evaluate it; `model` keeps the last one.

    The end points are copied first: `model.state_dict()` shares the model's storage, so the
    first state loaded would otherwise overwrite an end point.
    """
    start_state = {name: value.detach().clone() for name, value in start_state.items()}
    end_state = {name: value.detach().clone() for name, value in end_state.items()}
    evaluations = []
    for alpha in alpha_values:
        model.load_state_dict(interpolate(start_state, end_state, alpha))
        evaluations.append(evaluate_at(model))
    return evaluations


def _end_values(alpha_values: Sequence[float], values: Sequence[float]) -> tuple[float, float]:
    """The values at alpha 0 and alpha 1, which the barrier's straight line joins."""
    if len(alpha_values) != len(values):
        raise ValueError(f"{len(values)} values for {len(alpha_values)} alphas")
    points = dict(zip(alpha_values, values, strict=True))
    if 0.0 not in points or 1.0 not in points:
        raise ValueError(f"a barrier needs alpha 0 and alpha 1 among {list(alpha_values)}")
    return points[0.0], points[1.0]


def _line(first: float, last: float, alpha: float) -> float:
    """(1 - alpha) * first + alpha * last, written as torch.lerp so that it is exact at alpha 0
    and 1 and constant when first == last (the plain form can round 0.9c + 0.1c away from c)."""
    if alpha < 0.5:
        return first + alpha * (last - first)
    return last - (1 - alpha) * (last - first)
