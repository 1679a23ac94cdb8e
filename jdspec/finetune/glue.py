"""GLUE's metrics, so fine-tuning cells score as the GLUE leaderboard does: accuracy, Matthews
correlation (CoLA) and F1 (MRPC, QQP) in numpy (no scikit-learn), Pearson and Spearman
correlation (STS-B) from scipy.

Classification predictions are class indices (the argmax of the logits), regression
predictions the scores themselves; all arrive as floats so one signature serves every head.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from scipy import stats

from jdspec.registry import unknown_name_message

Metric = Callable[[Sequence[float], Sequence[float]], float]


def accuracy(predictions: Sequence[float], labels: Sequence[float]) -> float:
    """The fraction of predictions equal to their label."""
    predicted, true = _arrays(predictions, labels)
    return float(np.mean(predicted == true))


def matthews(predictions: Sequence[float], labels: Sequence[float]) -> float:
    """Matthews correlation over any number of classes (Gorodkin's R_K, as scikit-learn):
    CoLA's metric, fair under its label imbalance. 0.0 when undefined (one class only).
    """
    predicted, true = _arrays(predictions, labels)
    _, codes = np.unique(np.concatenate([true, predicted]), return_inverse=True)
    class_count = int(codes.max()) + 1
    confusion = np.zeros((class_count, class_count))  # (true class, predicted class)
    np.add.at(confusion, (codes[: len(true)], codes[len(true) :]), 1.0)
    true_totals, predicted_totals = confusion.sum(axis=1), confusion.sum(axis=0)
    correct, total = np.trace(confusion), confusion.sum()
    covariance = correct * total - predicted_totals @ true_totals
    scale = (total**2 - predicted_totals @ predicted_totals) * (
        total**2 - true_totals @ true_totals
    )
    return float(covariance / np.sqrt(scale)) if scale > 0 else 0.0


def f1(predictions: Sequence[float], labels: Sequence[float]) -> float:
    """F1 of the positive class 1 (MRPC's paraphrase, QQP's duplicate); 0.0 when no example
    is predicted or labelled positive, as scikit-learn."""
    predicted, true = _arrays(predictions, labels)
    true_positives = np.sum((predicted == 1) & (true == 1))
    errors = np.sum((predicted == 1) != (true == 1))  # false positives and false negatives
    if true_positives + errors == 0:
        return 0.0
    return float(2 * true_positives / (2 * true_positives + errors))


def pearson(predictions: Sequence[float], labels: Sequence[float]) -> float:
    """Pearson correlation (STS-B). 0.0 when either side is constant, where it is undefined:
    a pruned model that collapses to one score relates no better than chance."""
    predicted, true = _arrays(predictions, labels)
    if _constant(predicted) or _constant(true):
        return 0.0
    return float(stats.pearsonr(predicted, true).statistic)


def spearman(predictions: Sequence[float], labels: Sequence[float]) -> float:
    """Spearman correlation (STS-B): Pearson of the ranks, ties taking their average rank; 0.0
    when either side is constant."""
    predicted, true = _arrays(predictions, labels)
    if _constant(predicted) or _constant(true):
        return 0.0
    return float(stats.spearmanr(predicted, true).statistic)


METRICS: dict[str, Metric] = {
    "accuracy": accuracy,
    "matthews": matthews,
    "f1": f1,
    "pearson": pearson,
    "spearman": spearman,
}


def task_metrics(
    names: Sequence[str], predictions: Sequence[float], labels: Sequence[float]
) -> dict[str, float]:
    """Each named metric of one task's predictions, by name."""
    unknown = [name for name in names if name not in METRICS]
    if unknown:
        raise ValueError(unknown_name_message("metric", unknown[0], sorted(METRICS)))
    return {name: METRICS[name](predictions, labels) for name in names}


def _arrays(predictions: Sequence[float], labels: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    predicted = np.asarray(predictions, dtype=np.float64)
    true = np.asarray(labels, dtype=np.float64)
    if predicted.shape != true.shape or predicted.ndim != 1:
        raise ValueError(f"one prediction per label: {predicted.shape} and {true.shape}")
    if len(true) == 0:
        raise ValueError("metrics of no examples")
    return predicted, true


def _constant(values: np.ndarray) -> bool:
    """Tested on the values, not after centring: a constant's mean may differ from it by
    rounding, and scipy then warns instead of giving NaN."""
    return bool(values.min() == values.max())
