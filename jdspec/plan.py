"""Expand a spec into content-hashed cells and group them into jobs (no I/O, no torch)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from typing import Any

from pydantic import BaseModel

from jdspec.compress import COMPRESSORS
from jdspec.compress.none import NoneParams
from jdspec.requests import ENGINE_VERSION
from jdspec.spec import Evaluation, ModelRef, Spec
from jdspec.tasks import SETTINGS, Level
from jdspec.tasks.finetune import FinetuneLevel


@dataclass(frozen=True)
class Cell:
    """variant x level x seed: the unit of work, stored once under `cell_hash`."""

    cell_hash: str
    variant_hash: str
    model: str
    compressor: Any  # the method's params model
    level: Level
    seed: int
    key: dict[str, Any]  # exactly what was hashed
    family: str  # the report's curve: the compressor's family, with a fine-tuning transfer mode

    @property
    def method(self) -> str:
        return self.compressor.method


@dataclass(frozen=True)
class Job:
    """One compressed model (model x compressor x dtype) and every cell evaluated on it."""

    variant_hash: str
    model_ref: ModelRef
    compressor: Any
    evaluation: Evaluation
    cells: tuple[Cell, ...]


def canonical_json(value: Any) -> str:
    """Sorted keys, no whitespace, floats to 12 significant digits: equal content, equal text."""
    return json.dumps(_normalise(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _normalise(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return _normalise(value.model_dump(mode="json"))
    if isinstance(value, float):
        return float(f"{value:.12g}")
    if isinstance(value, dict):
        return {str(key): _normalise(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_normalise(item) for item in value]
    return value


def content_hash(value: Any) -> str:
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()


def _compressor_key(params: Any) -> dict[str, Any]:
    """The params plus the method's VERSION, so a changed algorithm changes every key."""
    version = COMPRESSORS.get(params.method).version
    return {**params.model_dump(mode="json"), "version": version}


def variant_key(model_ref: ModelRef, params: Any, evaluation: Evaluation) -> dict[str, Any]:
    return {
        "model": model_ref.model_dump(mode="json"),
        "compressor": _compressor_key(params),
        "calibration": None,
        "dtype": evaluation.dtype,
    }


def cell_key(variant: dict[str, Any], level: Level, evaluation: Evaluation) -> dict[str, Any]:
    setting_version = SETTINGS.get(level.setting).version
    return {
        **variant,
        "level": {
            "setting": level.setting,
            "setting_version": setting_version,
            **level.config.model_dump(mode="json"),
        },
        "seed": evaluation.seed,
        "batch_size": evaluation.batch_size,
        "engine": ENGINE_VERSION,
    }


def variants(spec: Spec) -> list[Any]:
    """The dense baseline first, then every distinct compressor params of the spec."""
    unique: dict[str, Any] = {content_hash(NoneParams()): NoneParams()}
    for params in spec.compressors:
        unique.setdefault(content_hash(params), params)
    return list(unique.values())


def expand(spec: Spec) -> list[Job]:
    """Every model x variant as a job holding its levels' cells; dense jobs come first."""
    levels = spec.spectrum.expand(spec.evaluation.n_examples, spec.evaluation.seed)
    jobs = []
    for params in variants(spec):
        for model_ref in spec.models:
            variant = variant_key(model_ref, params, spec.evaluation)
            variant_hash = content_hash(variant)
            cells = []
            for level in levels:
                for run_level, seed, family in _runs(spec, params, level):
                    key = cell_key(variant, run_level, spec.evaluation)
                    cells.append(
                        Cell(
                            content_hash(key),
                            variant_hash,
                            model_ref.label(),
                            params,
                            run_level,
                            seed,
                            key,
                            family,
                        )
                    )
            jobs.append(Job(variant_hash, model_ref, params, spec.evaluation, tuple(cells)))
    return jobs


def _runs(spec: Spec, params: Any, level: Level) -> list[tuple[Level, int, str]]:
    """How a variant runs a level: once at the evaluation seed, or, when it fine-tunes, once per
    training seed and transfer mode (the dense baseline only in mode dense). Each transfer mode
    is its own curve family in reports, e.g. 'magnitude global (dense_frozen)'."""
    if not isinstance(level.config, FinetuneLevel):
        return [(level, spec.evaluation.seed, params.family())]
    recipe = spec.training()
    dense = params.method == NoneParams().method
    runs = []
    for mode in ("dense",) if dense else recipe.transfer:
        family = params.family() if dense else f"{params.family()} ({mode})"
        for seed in recipe.seeds:
            config = level.config.model_copy(update={"training": recipe.run(seed, mode)})
            runs.append((replace(level, config=config), seed, family))
    return runs


def all_cells(jobs: list[Job]) -> list[Cell]:
    return [cell for job in jobs for cell in job.cells]


@dataclass(frozen=True)
class PlannedJob:
    """A job with the store's status of each of its cells."""

    job: Job
    statuses: tuple[str, ...]  # "new" | "done" | "failed", one per cell

    def pending(self, retry_failed: bool) -> tuple[Cell, ...]:
        wanted = {"new", "failed"} if retry_failed else {"new"}
        return tuple(c for c, s in zip(self.job.cells, self.statuses, strict=True) if s in wanted)


def attach_statuses(jobs: list[Job], stored: dict[str, str]) -> list[PlannedJob]:
    """Compare keys with the store: a cell is done, failed, or new when the store lacks it."""
    return [
        PlannedJob(job, tuple(stored.get(cell.cell_hash, "new") for cell in job.cells))
        for job in jobs
    ]


def count_statuses(planned: list[PlannedJob]) -> dict[str, int]:
    counts = {"new": 0, "done": 0, "failed": 0}
    for job in planned:
        for status in job.statuses:
            counts[status] += 1
    return counts
