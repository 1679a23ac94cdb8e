"""GLUE metrics against hand-worked cases and scipy's float64 correlations."""

from __future__ import annotations

import math

import numpy as np
import pytest

from jdspec.finetune.glue import (
    METRICS,
    accuracy,
    f1,
    matthews,
    pearson,
    spearman,
    task_metrics,
)

# Confusion matrix (rows true, columns predicted): TN 1, FP 1 / FN 1, TP 2.
LABELS = [1, 1, 1, 0, 0]
PREDICTIONS = [1, 1, 0, 0, 1]


def test_accuracy() -> None:
    assert accuracy(PREDICTIONS, LABELS) == pytest.approx(3 / 5)


def test_matthews_binary_by_hand() -> None:
    # (TP TN - FP FN) / sqrt((TP+FP)(TP+FN)(TN+FP)(TN+FN)) = (2 - 1) / sqrt(3 * 3 * 2 * 2)
    assert matthews(PREDICTIONS, LABELS) == pytest.approx(1 / 6)


def test_matthews_multiclass_by_hand() -> None:
    # True totals t = (2, 1, 1), predicted totals p = (1, 1, 2), 2 correct of 4:
    # (2 * 4 - t.p) / sqrt((16 - p.p)(16 - t.t)) = (8 - 5) / sqrt(10 * 10)
    assert matthews([0, 2, 2, 1], [0, 1, 2, 0]) == pytest.approx(0.3)


def test_matthews_perfect_and_inverted() -> None:
    assert matthews([0, 1, 1, 0], [0, 1, 1, 0]) == pytest.approx(1.0)
    assert matthews([1, 0, 0, 1], [0, 1, 1, 0]) == pytest.approx(-1.0)


def test_matthews_is_zero_when_undefined() -> None:
    # One predicted class: the denominator vanishes; scikit-learn reports 0.0.
    assert matthews([1, 1, 1, 1], [0, 1, 1, 0]) == 0.0
    assert matthews([1, 1], [1, 1]) == 0.0


def test_f1_of_the_positive_class() -> None:
    # TP 2, FP 1, FN 1: 2 TP / (2 TP + FP + FN) = 4 / 6
    assert f1(PREDICTIONS, LABELS) == pytest.approx(2 / 3)
    # Swapping classes changes the score: F1 reads class 1 only (TP 1, FP 1, FN 1).
    assert f1([1 - p for p in PREDICTIONS], [1 - y for y in LABELS]) == pytest.approx(1 / 2)


def test_f1_is_zero_without_positives() -> None:
    assert f1([0, 0, 0], [0, 0, 0]) == 0.0


def test_pearson_by_hand() -> None:
    # Centred x = (-1, 0, 1), y = (-4/3, -1/3, 5/3): 3 / sqrt(2 * 42/9) = 9 / sqrt(84)
    assert pearson([1, 2, 3], [1, 2, 4]) == pytest.approx(9 / math.sqrt(84))


def test_spearman_ties_take_average_ranks() -> None:
    # Ranks (1, 2.5, 2.5, 4) and (1, 3, 2, 4); centred, 4.5 / sqrt(4.5 * 5) = 3 / sqrt(10)
    assert spearman([1, 2, 2, 3], [1, 3, 2, 4]) == pytest.approx(3 / math.sqrt(10))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_correlations_match_a_float64_reference(seed: int) -> None:
    """Pearson as numpy's correlation matrix gives it; Spearman as Pearson of average ranks,
    computed here by hand (many ties, as STS-B's labels come in steps of 0.2)."""
    generator = np.random.default_rng(seed)
    labels = generator.uniform(0, 5, size=200)
    predictions = labels + generator.normal(0, 1.5, size=200)
    tied_labels = np.round(labels * 5) / 5
    tied_predictions = np.round(predictions)
    assert pearson(predictions, labels) == pytest.approx(
        np.corrcoef(predictions, labels)[0, 1], rel=1e-12
    )
    assert spearman(tied_predictions, tied_labels) == pytest.approx(
        np.corrcoef(_average_ranks(tied_predictions), _average_ranks(tied_labels))[0, 1],
        rel=1e-12,
    )


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, each tie the mean of the ranks it spans."""
    ranks = np.empty(len(values))
    for value in np.unique(values):
        where = np.flatnonzero(values == value)
        below = int((values < value).sum())
        ranks[where] = below + (len(where) + 1) / 2
    return ranks


def test_correlation_of_a_constant_is_zero() -> None:
    assert pearson([0.1, 0.1, 0.1], [1.0, 2.0, 3.0]) == 0.0
    assert spearman([1.0, 2.0, 3.0], [2.0, 2.0, 2.0]) == 0.0


def test_task_metrics_by_name() -> None:
    scores = task_metrics(("f1", "accuracy"), PREDICTIONS, LABELS)
    assert scores == {"f1": pytest.approx(2 / 3), "accuracy": pytest.approx(3 / 5)}
    assert set(METRICS) == {"accuracy", "matthews", "f1", "pearson", "spearman"}


def test_unknown_metric_suggests_the_closest() -> None:
    with pytest.raises(ValueError, match="did you mean 'matthews'"):
        task_metrics(("mathews",), PREDICTIONS, LABELS)
