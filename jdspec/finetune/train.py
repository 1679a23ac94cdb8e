"""Fine-tune one encoder on one task with the paper's recipe (AdamW, linear warm-up then decay),
evaluating the test examples after every epoch; a checkpoint per epoch lets a killed cell resume.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from jdspec.data.finetune_data import ChoiceExample, Example, Head, TaskData
from jdspec.errors import JobError
from jdspec.finetune.glue import task_metrics
from jdspec.finetune.transfer import HeldWeights, check_held, hold
from jdspec.tasks.finetune import TrainingRun

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


@dataclass(frozen=True)
class PassScores:
    """What one pass over the test examples measured, in their input order (not to be confused
    with a spec's `evaluation:` settings, jdspec.spec.Evaluation)."""

    metrics: dict[str, float]  # task_metrics(data.metrics, predictions, labels)
    loss: float  # mean cross-entropy over examples; mean squared error for regression
    predictions: tuple[float, ...]  # class index, option index or regression score
    scores: tuple[tuple[float, ...], ...]  # per example, the head's logits


@dataclass(frozen=True)
class TrainingOutcome:
    """One evaluation after every epoch; the last is the run's result."""

    epochs: tuple[PassScores, ...]

    @property
    def final(self) -> PassScores:
        return self.epochs[-1]


def load_encoder(
    folder: str, revision: str | None, data: TaskData, seed: int, device: torch.device
) -> tuple[nn.Module, PreTrainedTokenizerBase]:
    """The pretrained encoder with a new `data.head` head, float32, in eval mode on `device`.

    The head is drawn under `seed` (the global RNG is left as it was), so a seed fixes it.
    """
    from transformers import (
        AutoModelForMultipleChoice,
        AutoModelForSequenceClassification,
        AutoTokenizer,
    )

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if data.head == "multiple_choice":
            model = AutoModelForMultipleChoice.from_pretrained(
                folder, revision=revision, dtype=torch.float32
            )
        else:
            model = AutoModelForSequenceClassification.from_pretrained(
                folder,
                revision=revision,
                dtype=torch.float32,
                num_labels=data.label_count,
                problem_type=_PROBLEM_TYPES[data.head],
            )
    tokenizer = AutoTokenizer.from_pretrained(folder, revision=revision)
    return model.to(device).eval(), tokenizer


_PROBLEM_TYPES = {"classification": "single_label_classification", "regression": "regression"}


def evaluate(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    data: TaskData,
    examples: Sequence[Example],
    max_length: int,
    batch_size: int,
    autocast_dtype: torch.dtype | None,
) -> PassScores:
    """Score `examples` in batches of similar length (little padding); results in input order."""
    if not examples:
        raise ValueError("no test examples to evaluate")
    model.eval()
    order = sorted(range(len(examples)), key=lambda index: _length(examples[index]))
    scores: list[tuple[float, ...]] = [()] * len(examples)
    loss_sum = 0.0
    with torch.no_grad():
        for start in range(0, len(order), batch_size):
            indices = order[start : start + batch_size]
            batch = [examples[index] for index in indices]
            logits = _logits(model, tokenizer, batch, max_length, autocast_dtype)
            labels = _labels(data.head, batch, logits.device)
            loss_sum += float(_loss(data.head, logits, labels, "sum"))
            for index, row in zip(indices, logits.tolist(), strict=True):
                scores[index] = tuple(row)
    predictions = tuple(_prediction(data.head, row) for row in scores)
    labels = [float(example.label) for example in examples]
    metrics = task_metrics(data.metrics, predictions, labels)
    return PassScores(metrics, loss_sum / len(examples), predictions, tuple(scores))


def train(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    data: TaskData,
    train_examples: Sequence[Example],
    test_examples: Sequence[Example],
    run: TrainingRun,
    held: HeldWeights,
    checkpoint: Path | None,
    eval_batch_size: int,
    autocast_dtype: torch.dtype | None,
    on_step: Callable[[int, int], None] | None = None,
) -> TrainingOutcome:
    """Train `run.epochs` epochs, holding `held` after every step and evaluating after every epoch.

    With `checkpoint`, every finished epoch is saved there and a later call resumes after the
    last one saved, reproducing an uninterrupted run exactly (same order, dropout and updates).
    """
    device = next(model.parameters()).device
    steps_per_epoch = math.ceil(len(train_examples) / run.batch_size)
    total_steps = steps_per_epoch * run.epochs
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=run.learning_rate, weight_decay=run.weight_decay
    )
    scheduler = linear_schedule(optimizer, warmup_steps(run.warmup_ratio, total_steps), total_steps)
    # float16 gradients underflow without loss scaling; bfloat16 and float32 need none
    scaler = torch.amp.GradScaler(device.type, enabled=autocast_dtype == torch.float16)
    parts = {"model": model, "optimizer": optimizer, "scheduler": scheduler, "scaler": scaler}
    settings = (run.max_length, eval_batch_size, autocast_dtype)  # evaluate's last three
    identity = {"run": run.model_dump(), "train_examples": len(train_examples)}
    with torch.random.fork_rng(devices=_cuda_indices(device)):
        torch.manual_seed(run.seed)
        evaluations = _resume(checkpoint, parts, identity, device)
        for epoch in range(len(evaluations), run.epochs):
            model.train()
            steps = _train_epoch(
                parts, tokenizer, data, train_examples, run, epoch, held, autocast_dtype
            )
            for step in steps:
                if on_step is not None:
                    on_step(epoch * steps_per_epoch + step, total_steps)
            check_held(held)
            evaluations.append(evaluate(model, tokenizer, data, test_examples, *settings))
            if checkpoint is not None:
                _save(checkpoint, parts, identity, evaluations, device)
    model.eval()
    return TrainingOutcome(tuple(evaluations))


def warmup_steps(warmup_ratio: float, total_steps: int) -> int:
    """Steps of linear warm-up: the ratio's share of all steps, rounded up.

    Rounded to 9 places first: 0.06 * 100 is 6.000000000000001 in binary, which ceil makes 7.
    """
    return math.ceil(round(warmup_ratio * total_steps, 9))


def linear_schedule(
    optimizer: torch.optim.Optimizer, warmup: int, total_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up from 0 to the peak over `warmup` steps, then linear decay to 0 at the end.

    The same factor as transformers' get_linear_schedule_with_warmup (the paper's recipe).
    """

    def factor(step: int) -> float:
        if step < warmup:
            return step / warmup
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def epoch_order(count: int, seed: int, epoch: int) -> list[int]:
    """The order of the training examples in `epoch`: a permutation seeded by (seed, epoch) alone,
    so a resumed run sees the same order as an uninterrupted one. Seeds must be non-negative."""
    return np.random.default_rng([seed, epoch]).permutation(count).tolist()


def _train_epoch(
    parts: dict[str, Any],
    tokenizer: PreTrainedTokenizerBase,
    data: TaskData,
    examples: Sequence[Example],
    run: TrainingRun,
    epoch: int,
    held: HeldWeights,
    autocast_dtype: torch.dtype | None,
) -> Iterator[int]:
    """One pass in batches of `run.batch_size`: step, schedule, restore the held weights, then
    yield the steps done in this epoch so the caller can report progress."""
    model, optimizer, scheduler, scaler = (parts[key] for key in _PART_KEYS)
    order = epoch_order(len(examples), run.seed, epoch)
    for step, start in enumerate(range(0, len(order), run.batch_size), start=1):
        batch = [examples[index] for index in order[start : start + run.batch_size]]
        logits = _logits(model, tokenizer, batch, run.max_length, autocast_dtype)
        loss = _loss(data.head, logits, _labels(data.head, batch, logits.device), "mean")
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        hold(held)
        yield step


_PART_KEYS = ("model", "optimizer", "scheduler", "scaler")


def _logits(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    batch: Sequence[Example],
    max_length: int,
    autocast_dtype: torch.dtype | None,
) -> torch.Tensor:
    """The head's logits in float32: (batch, classes), (batch, 1) or (batch, options)."""
    device = next(model.parameters()).device
    inputs = {key: value.to(device) for key, value in _encode(tokenizer, batch, max_length).items()}
    autocast = (
        contextlib.nullcontext()
        if autocast_dtype is None
        else torch.autocast(device.type, dtype=autocast_dtype)
    )
    with autocast:
        return model(**inputs).logits.float()


def _encode(
    tokenizer: PreTrainedTokenizerBase, batch: Sequence[Example], max_length: int
) -> dict[str, torch.Tensor]:
    """Token ids padded to the batch's longest; choices as (batch, options, length)."""
    if not isinstance(batch[0], ChoiceExample):
        return _tokenize(tokenizer, [example.texts for example in batch], max_length)
    option_count = len(batch[0].options)
    if any(len(example.options) != option_count for example in batch):
        raise ValueError(f"a batch of choices with other than {option_count} options each")
    pairs = [pair for example in batch for pair in example.options]
    encoded = _tokenize(tokenizer, pairs, max_length)
    return {key: value.view(len(batch), option_count, -1) for key, value in encoded.items()}


def _tokenize(
    tokenizer: PreTrainedTokenizerBase, segments: list[tuple[str, ...]], max_length: int
) -> dict[str, torch.Tensor]:
    """One segment or a (first, second) pair per row; pairs are cut longest-first to fit."""
    columns = [list(column) for column in zip(*segments, strict=True)]
    if len(columns) not in (1, 2):
        raise ValueError(f"an encoder reads one or two segments, got {len(columns)}")
    encoded = tokenizer(
        *columns, truncation=True, max_length=max_length, padding=True, return_tensors="pt"
    )
    return dict(encoded)


def _labels(head: Head, batch: Sequence[Example], device: torch.device) -> torch.Tensor:
    if head == "regression":
        return torch.tensor(
            [example.label for example in batch], dtype=torch.float32, device=device
        )
    return torch.tensor([int(example.label) for example in batch], device=device)


def _loss(head: Head, logits: torch.Tensor, labels: torch.Tensor, reduction: str) -> torch.Tensor:
    """Cross-entropy over classes or options; squared error for a regression score."""
    if head == "regression":
        return F.mse_loss(logits.squeeze(-1), labels, reduction=reduction)
    return F.cross_entropy(logits, labels, reduction=reduction)


def _prediction(head: Head, row: tuple[float, ...]) -> float:
    """The regression score, or the first highest-scoring class or option."""
    if head == "regression":
        return row[0]
    return float(max(range(len(row)), key=row.__getitem__))


def _length(example: Example) -> int:
    """Characters the encoder reads, a cheap stand-in for tokens when sorting to cut padding."""
    if isinstance(example, ChoiceExample):
        return max(len(first) + len(second) for first, second in example.options)
    return sum(len(text) for text in example.texts)


def _cuda_indices(device: torch.device) -> list[int]:
    """The CUDA device whose RNG training uses (dropout), for fork_rng to restore afterwards."""
    if device.type != "cuda":
        return []
    return [device.index if device.index is not None else torch.cuda.current_device()]


def _save(
    path: Path,
    parts: dict[str, Any],
    identity: dict[str, Any],
    evaluations: list[PassScores],
    device: torch.device,
) -> None:
    """Write the state after an epoch atomically: a killed write leaves the previous epoch's."""
    state = {key: parts[key].state_dict() for key in _PART_KEYS}
    state |= identity | {
        "epochs_done": len(evaluations),
        "evaluations": [asdict(evaluation) for evaluation in evaluations],
        "cpu_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    torch.save(state, partial)
    os.replace(partial, path)


def _resume(
    path: Path | None, parts: dict[str, Any], identity: dict[str, Any], device: torch.device
) -> list[PassScores]:
    """Load the last saved epoch into `parts` and the RNGs; the evaluations so far ([] if none)."""
    if path is None or not path.exists():
        return []
    state = torch.load(path, map_location="cpu", weights_only=True)
    for key, value in identity.items():
        if state[key] != value:
            raise JobError(f"{path} belongs to another run: {key} {state[key]!r}")
    for key in _PART_KEYS:
        parts[key].load_state_dict(state[key])
    torch.set_rng_state(state["cpu_rng"])
    if state["cuda_rng"] is not None:
        torch.cuda.set_rng_state(state["cuda_rng"], device)
    return [_evaluation(saved) for saved in state["evaluations"]]


def _evaluation(saved: dict[str, Any]) -> PassScores:
    return PassScores(
        metrics=dict(saved["metrics"]),
        loss=saved["loss"],
        predictions=tuple(saved["predictions"]),
        scores=tuple(tuple(row) for row in saved["scores"]),
    )
