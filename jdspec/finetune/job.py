"""A fine-tuning job: each cell loads the pretrained encoder with a fresh task head, applies its
transfer mode, fine-tunes and evaluates; connectivity cells then walk the line between the
dense and the pruned fine-tuned models.

Like every worker it never opens the database: it yields plain records. A cell in training
keeps its last completed epoch under the cache (jdspec/cache.py), so a killed run resumes
there; the runner removes the checkpoint once the cell is stored.
"""

from __future__ import annotations

import json
import os
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from jdspec.cache import checkpoint_folder, finetuned_folder, remove_checkpoint
from jdspec.compress.none import NoneParams
from jdspec.data.finetune_data import ChoiceExample, Example, TaskData, load_task
from jdspec.eval.requests import prompt_hash
from jdspec.finetune.connectivity import accuracy_barrier, alphas, connectivity_curve, loss_barrier
from jdspec.finetune.train import PassScores, evaluate, load_encoder, train
from jdspec.finetune.transfer import prepare_transfer
from jdspec.jobs import ProgressCallback
from jdspec.models import DTYPES, model_folder, resolve_device
from jdspec.plan import Cell, Job, content_hash
from jdspec.results import (
    CellResult,
    CompressionRecord,
    ExampleRecord,
    MetricValue,
    Progress,
    TaskResult,
    VariantResult,
)
from jdspec.tasks.core import seeded_sample
from jdspec.tasks.finetune import FinetuneLevel, TrainingRun, training_subset

AUTO_EVAL_BATCH = 64  # evaluation rows per pass when the spec says "auto"


@dataclass(frozen=True)
class _Inputs:
    """What every training run of one cell shares."""

    folder: str
    revision: str | None
    device: torch.device
    data: TaskData
    train_examples: list[Example]
    test_examples: list[Example]
    eval_batch_size: int
    autocast_dtype: torch.dtype | None
    on_step: Callable[[int, int], None]


def execute_finetune_job(
    job: Job, cells: tuple[Cell, ...], on_progress: ProgressCallback | None = None
) -> Iterator[VariantResult | CellResult]:
    """Run each cell; the first measured mask describes the variant. A failure fails one cell,
    or every cell when the model cannot be found."""
    started = time.time()
    try:
        folder, revision = model_folder(job.model_ref)
    except Exception:
        error = traceback.format_exc()
        for cell in cells:
            yield CellResult(cell.cell_hash, "failed", started, time.time() - started, error=error)
        return
    measured = False
    for cell in cells:
        started = time.time()
        try:
            record, result = _run_cell(job, cell, folder, revision, on_progress)
        except Exception:
            error = traceback.format_exc()
            yield CellResult(cell.cell_hash, "failed", started, time.time() - started, error=error)
            continue
        if not measured:
            yield VariantResult(job.variant_hash, record)
            measured = True
        yield CellResult(
            cell.cell_hash,
            "done",
            started,
            time.time() - started,
            metrics=result.metrics,
            examples=result.examples,
        )


def _run_cell(
    job: Job,
    cell: Cell,
    folder: str,
    revision: str | None,
    on_progress: ProgressCallback | None,
) -> tuple[CompressionRecord, TaskResult]:
    level, training = _planned(cell)
    data = load_task(level.task, level.source, level.revision, level.split_seed)
    batch_size = job.evaluation.batch_size

    def on_step(done: int, total: int) -> None:
        if on_progress:
            on_progress(Progress(cell.cell_hash, done, total))

    inputs = _Inputs(
        folder=folder,
        revision=revision,
        device=resolve_device(job.evaluation.device),
        data=data,
        train_examples=training_subset(data.train, level),
        test_examples=seeded_sample(
            data.test, _at_most(level.n_test, len(data.test)), job.evaluation.seed, "tests"
        ),
        eval_batch_size=batch_size if isinstance(batch_size, int) else AUTO_EVAL_BATCH,
        autocast_dtype=None if job.evaluation.dtype == "float32" else DTYPES[job.evaluation.dtype],
        on_step=on_step,
    )
    checkpoint = checkpoint_folder(cell.cell_hash) / "training.pt"
    if level.kind == "finetune":
        model, _, record, epochs = _trained(inputs, training, job.compressor, checkpoint)
        return record, _finetune_result(data, inputs.test_examples, epochs)
    if level.alpha_count is None:
        raise ValueError(f"connectivity level {cell.level.label} has no alpha_count")
    dense_state = _dense_end_point(job, level, training, inputs)
    if training.transfer == "dense":  # the baseline's line joins the dense model to itself
        model, tokenizer = load_encoder(
            inputs.folder, inputs.revision, data, training.seed, inputs.device
        )
        _, record = prepare_transfer(model, "dense", job.compressor)
        pruned_state = dense_state
    else:
        model, tokenizer, record, _ = _trained(inputs, training, job.compressor, checkpoint)
        pruned_state = {name: value.detach().clone() for name, value in model.state_dict().items()}
    curve = connectivity_curve(
        model,
        dense_state,
        pruned_state,
        alphas(level.alpha_count),
        lambda interpolated: evaluate(
            interpolated,
            tokenizer,
            data,
            inputs.test_examples,
            training.max_length,
            inputs.eval_batch_size,
            inputs.autocast_dtype,
        ),
    )
    return record, _connectivity_result(data, inputs.test_examples, level.alpha_count, curve)


def _planned(cell: Cell) -> tuple[FinetuneLevel, TrainingRun]:
    """The cell's fine-tuning level and the training run the planner filled in."""
    level = cell.level.config
    if not isinstance(level, FinetuneLevel) or level.training is None:
        raise TypeError(f"cell {cell.cell_hash} is not a planned fine-tuning cell: {level!r}")
    return level, level.training


def _at_most(count: int | None, available: int) -> int | None:
    """Tasks of one spectrum differ in size: n_examples caps each at what it has."""
    return None if count is None else min(count, available)


def _trained(
    inputs: _Inputs, run: TrainingRun, params: object, checkpoint: Path
) -> tuple[nn.Module, object, CompressionRecord, tuple[PassScores, ...]]:
    """A fresh encoder with the run's head, transfer mode applied, trained to the end."""
    model, tokenizer = load_encoder(
        inputs.folder, inputs.revision, inputs.data, run.seed, inputs.device
    )
    held, record = prepare_transfer(model, run.transfer, params)
    outcome = train(
        model,
        tokenizer,
        inputs.data,
        inputs.train_examples,
        inputs.test_examples,
        run,
        held,
        checkpoint,
        inputs.eval_batch_size,
        inputs.autocast_dtype,
        inputs.on_step,
    )
    return model, tokenizer, record, outcome.epochs


def _dense_end_point(
    job: Job, level: FinetuneLevel, training: TrainingRun, inputs: _Inputs
) -> dict[str, torch.Tensor]:
    """The dense-transfer model of the same task and seed, trained once and shared by every
    pruned variant's connectivity cell (cached by the key of that training run)."""
    from safetensors.torch import load_file, save_file

    run = training.model_copy(update={"transfer": "dense"})
    key = content_hash(
        {
            "model": job.model_ref,
            "dtype": job.evaluation.dtype,
            "test_seed": job.evaluation.seed,
            "level": level.model_copy(update={"training": run, "alpha_count": None}),
        }
    )
    path = finetuned_folder() / f"{key}.safetensors"
    if path.exists():
        return load_file(str(path), device=str(inputs.device))
    model, _, _, _ = _trained(inputs, run, NoneParams(), checkpoint_folder(key) / "training.pt")
    state = {
        name: value.detach().clone().contiguous() for name, value in model.state_dict().items()
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    save_file(state, str(partial), metadata={"run": json.dumps(run.model_dump())})
    os.replace(partial, path)  # atomic: a killed save leaves no half file
    remove_checkpoint(key)
    return state


def _metric_values(
    measured: PassScores, count: int, step_name: str | None = None, step: float | None = None
) -> list[MetricValue]:
    named = {**measured.metrics, "loss": measured.loss}
    return [
        MetricValue(name, float(value), count, step_name, step) for name, value in named.items()
    ]


def _finetune_result(
    data: TaskData, examples: Sequence[Example], epochs: tuple[PassScores, ...]
) -> TaskResult:
    """The final epoch's metrics and loss, each epoch's at its step (`epoch` 1, 2, ...), and
    one record per test example of the final model."""
    metrics = _metric_values(epochs[-1], len(examples))
    for number, measured in enumerate(epochs, start=1):
        metrics += _metric_values(measured, len(examples), "epoch", float(number))
    return TaskResult(tuple(metrics), _example_records(data, examples, epochs[-1]))


def _connectivity_result(
    data: TaskData, examples: Sequence[Example], alpha_count: int, curve: list[PassScores]
) -> TaskResult:
    """The pruned end point's metrics (alpha 1), every point's at its step (`alpha`), and the
    barriers: loss above the straight line, and each metric below it."""
    points = alphas(alpha_count)
    metrics = _metric_values(curve[-1], len(examples))
    for alpha, measured in zip(points, curve, strict=True):
        metrics += _metric_values(measured, len(examples), "alpha", alpha)
    barriers = [("loss", loss_barrier(points, [point.loss for point in curve]))]
    for name in data.metrics:
        values = [point.metrics[name] for point in curve]
        barriers.append((name, accuracy_barrier(points, values)))
    metrics += [MetricValue(f"barrier_{name}", value, len(examples)) for name, value in barriers]
    return TaskResult(tuple(metrics), _example_records(data, examples, curve[-1]))


def _example_records(
    data: TaskData, examples: Sequence[Example], measured: PassScores
) -> tuple[ExampleRecord, ...]:
    """Prediction, gold and the model's scores per example. For classes and options `score` is
    the chosen one's log-probability and `option_scores` the logits; for regression `score`
    is the predicted value and `correct` is false (there is no right answer, only an error)."""
    records = []
    for example, prediction, logits in zip(
        examples, measured.predictions, measured.scores, strict=True
    ):
        label = example.label
        texts = (
            [text for option in example.options for text in option]
            if isinstance(example, ChoiceExample)
            else list(example.texts)
        )
        if data.head == "regression":
            correct, score = False, float(prediction)
        else:
            correct = int(prediction) == int(label)
            score = float(torch.log_softmax(torch.tensor(logits), dim=0)[int(prediction)])
        records.append(
            ExampleRecord(
                example_id=example.example_id,
                prompt_hash=prompt_hash("\n".join(texts)),
                prediction=f"{prediction:g}",
                gold=f"{label:g}",
                correct=correct,
                score=score,
                option_scores=tuple(float(value) for value in logits),
            )
        )
    return tuple(records)
