"""The fine-tuning job kind, torch-free: what a fine-tuning cell trains (the spec's `finetuning:`
section, one training run, the level config of fine-tuning settings: setting 1, Section 5,
Appendix C), the nested training subsets, and the kind's registration: one cell per training
seed and transfer mode, compressors whose masks transfer, and its runner (jdspec/finetune/)."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Annotated, Literal, TypeVar

from pydantic import BaseModel, Field, field_validator, model_validator

from jdspec.compress import COMPRESSORS
from jdspec.jobs import (
    JobKind,
    LevelRun,
    ProgressCallback,
    SpecProblem,
    SpecSection,
    register_job_kind,
)
from jdspec.registry import unknown_name_message
from jdspec.results import CellResult, VariantResult
from jdspec.tasks.core import DataSource, Level

if TYPE_CHECKING:
    from jdspec.plan import Cell, Job
    from jdspec.spec import Spec

VERSION = 1
T = TypeVar("T")

# dense: no pruning. sparse: pruned, the mask held after every optimizer step. dense_frozen: the
# weights pruning would remove stay at their pretrained values, the rest train. sparse_to_dense:
# pruned, then every weight trains (pruned ones may grow back).
TransferMode = Literal["dense", "sparse", "dense_frozen", "sparse_to_dense"]


class FineTuning(BaseModel, extra="forbid", frozen=True):
    """The spec's `finetuning:` section; defaults are the paper's (RoBERTa on GLUE)."""

    learning_rate: float = Field(2e-5, gt=0, description="AdamW's peak learning rate.")
    epochs: int = Field(3, ge=1, description="Passes over the training subset.")
    batch_size: int = Field(32, ge=1, description="Training examples per optimizer step.")
    max_length: int = Field(128, ge=8, description="Tokens per example; longer ones are cut.")
    warmup_ratio: float = Field(0.06, ge=0, lt=1, description="Share of steps warming up.")
    weight_decay: float = Field(0.0, ge=0, description="AdamW's decoupled weight decay.")
    seeds: tuple[Annotated[int, Field(ge=0)], ...] = Field(
        (41, 42, 43), min_length=1, description="One cell per seed: head init, order, dropout."
    )
    transfer: tuple[TransferMode, ...] = Field(
        ("sparse",),
        min_length=1,
        description="Transfer modes of pruned variants; the dense baseline is always 'dense'.",
    )

    @field_validator("seeds", "transfer")
    @classmethod
    def _distinct(cls, values: tuple) -> tuple:
        if len(set(values)) != len(values):
            raise ValueError(f"repeated values in {list(values)}")
        return values

    @field_validator("transfer")
    @classmethod
    def _pruned_modes(cls, modes: tuple[str, ...]) -> tuple[str, ...]:
        if "dense" in modes:
            raise ValueError(
                "'dense' is the baseline, always run with the method none; "
                "list the modes of pruned models: sparse, dense_frozen, sparse_to_dense"
            )
        return modes

    def run(self, seed: int, transfer: str) -> TrainingRun:
        hyperparameters = self.model_dump(exclude={"seeds", "transfer"})
        return TrainingRun(**hyperparameters, seed=seed, transfer=transfer)  # type: ignore[arg-type]


class TrainingRun(BaseModel, extra="forbid", frozen=True):
    """One training run's hyperparameters, seed and transfer mode: part of the cell key."""

    learning_rate: float
    epochs: int
    batch_size: int
    max_length: int
    warmup_ratio: float
    weight_decay: float
    seed: int
    transfer: TransferMode


class FinetuneLevel(BaseModel, extra="forbid", frozen=True):
    """Everything that decides a fine-tuning cell's result besides the model and its pruning.

    kind "finetune": train once, evaluate every epoch. kind "connectivity" (Appendix C): train
    the dense and the `training.transfer` end points with the same seed, then evaluate
    `alpha_count` evenly spaced points of the straight line between them. `training` is filled
    in per seed and transfer mode when the spec is planned.
    """

    kind: Literal["finetune", "connectivity"] = "finetune"
    version: int = VERSION
    task: str
    source: str
    revision: str
    split_seed: int
    n_train: int | None
    train_fraction: float = Field(gt=0, le=1)
    subset_seed: int
    n_test: int | None  # at most this many test examples (seeded); None for all
    training: TrainingRun | None = None
    alpha_count: int | None = None


class FinetuneSource(DataSource):
    """Where a fine-tuning spectrum's data come from and how the training pool is drawn."""

    split_seed: int = Field(
        0, description="Offline sets cut from a validation split: which half trains."
    )
    n_train: int | None = Field(
        None, ge=1, description="At most this many training examples (seeded); null for all."
    )
    subset_seed: int = Field(0, description="Orders the pool; every fraction takes a prefix.")

    def task_names(self) -> tuple[str, ...]:
        """The tasks the spectrum fine-tunes on; each setting says which."""
        raise NotImplementedError

    @model_validator(mode="after")
    def _shipped(self) -> FinetuneSource:
        """Offline, only the tasks the packages ship: say so when the spec is read, not later."""
        from jdspec.data.finetune_data import offline_task_names

        if self.source == "offline":
            missing = [task for task in self.task_names() if task not in offline_task_names()]
            if missing:
                raise ValueError(
                    f"{', '.join(missing)} not shipped offline; use source: hub, or one of "
                    f"{', '.join(offline_task_names())}"
                )
        return self

    def level(self, task: str, n_test: int | None, **extra: object) -> FinetuneLevel:
        return FinetuneLevel(
            task=task,
            source=self.source,
            revision=self.resolved_revision(),
            split_seed=self.split_seed,
            n_train=self.n_train,
            subset_seed=self.subset_seed,
            n_test=n_test,
            **extra,  # type: ignore[arg-type]
        )


def known_task(task: str) -> str:
    """A spec's task name, checked against the registered fine-tuning data sets."""
    from jdspec.data.finetune_data import FINETUNE_TASKS

    if task not in FINETUNE_TASKS.names():
        raise ValueError(unknown_name_message("fine-tuning task", task, FINETUNE_TASKS.names()))
    return task


def task_metrics(tasks: Sequence[str]) -> tuple[str, ...]:
    """The metrics a fine-tuning cell stores: each task's GLUE metrics, then the loss."""
    from jdspec.data.finetune_data import FINETUNE_TASKS

    names: list[str] = []
    for task in tasks:
        names += [name for name in FINETUNE_TASKS.get(task).metrics if name not in names]
    return (*names, "loss")


def training_subset(examples: Sequence[T], level: FinetuneLevel) -> list[T]:
    """The level's training examples: a seeded order of the split, at most its first n_train
    as the pool (a small task keeps all it has), and the first `train_fraction` of the pool
    (rounded half up, at least one).

    Every fraction is a prefix of the same order, so a smaller subset lies inside a larger one
    (the reference script took a prefix of the file instead, which is not a random sample).
    """
    order = random.Random(level.subset_seed).sample(range(len(examples)), len(examples))
    pool = order if level.n_train is None else order[: level.n_train]
    count = max(1, math.floor(level.train_fraction * len(pool) + 0.5))
    return [examples[index] for index in pool[:count]]


def _training_runs(spec: Spec, level: Level, dense: bool) -> list[LevelRun]:
    """A fine-tuning level runs once per training seed and transfer mode (the dense baseline
    only in mode dense). Each mode is its own curve family in reports, e.g.
    'magnitude global (dense_frozen)'."""
    if not isinstance(level.config, FinetuneLevel):
        raise TypeError(f"setting {level.setting} fine-tunes but its level is {level.config!r}")
    recipe = getattr(spec, SECTION.name) or FineTuning()
    runs = []
    for mode in ("dense",) if dense else recipe.transfer:
        suffix = "" if dense else f" ({mode})"
        for seed in recipe.seeds:
            config = level.config.model_copy(update={"training": recipe.run(seed, mode)})
            runs.append(LevelRun(replace(level, config=config), seed, suffix))
    return runs


def _transfer_compressors(spec: Spec) -> list[SpecProblem]:
    """Transfer modes hold, freeze or regrow the weights a magnitude mask selects: only
    compressors that declare transfer support can make that mask."""
    supported = [name for name, compressor in COMPRESSORS.items() if compressor.supports_transfer]
    return [
        SpecProblem(
            ("compressors", index, "method"),
            f"setting {spec.spectrum.setting} fine-tunes with a magnitude mask; expected one of "
            f"{', '.join(supported)}, got {params.method!r}",
        )
        for index, params in enumerate(spec.compressors)
        if params.method not in supported
    ]


def _execute(
    job: Job, cells: tuple[Cell, ...], on_progress: ProgressCallback | None
) -> Iterator[VariantResult | CellResult]:
    from jdspec.finetune.job import execute_finetune_job  # torch loads in the worker

    return execute_finetune_job(job, cells, on_progress)


SECTION = SpecSection(
    "finetuning", FineTuning, "Training of fine-tuning settings; the paper's recipe when absent."
)
register_job_kind("finetune", JobKind(_training_runs, _execute, SECTION, _transfer_compressors))
