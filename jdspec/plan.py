"""Expand a spec into content-hashed cells and group them into jobs (no I/O, no torch)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from jdspec.compress import COMPRESSORS
from jdspec.compress.none import NoneParams
from jdspec.eval.requests import ENGINE_VERSION
from jdspec.jobs import JOB_KINDS
from jdspec.spec import Evaluation, ModelRef, Spec
from jdspec.tasks import SETTINGS, Level


@dataclass(frozen=True)
class Cell:
    """variant x level x seed: the unit of work, stored once under `cell_hash`."""

    cell_hash: str
    variant_hash: str
    model: str
    compressor: Any  # the method's params model
    level: Level
    seed: int
    key_json: str  # exactly the text that was hashed: the key as canonical JSON
    family: str  # the report's curve: the compressor's family, with what its job kind adds

    @property
    def method(self) -> str:
        return self.compressor.method


@dataclass(frozen=True)
class Job:
    """One compressed model (model x compressor x dtype) and every cell run on it; `kind` names
    the job kind whose runner runs it (jdspec/jobs.py)."""

    variant_hash: str
    model_ref: ModelRef
    compressor: Any
    evaluation: Evaluation
    cells: tuple[Cell, ...]
    kind: str


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
    return _sha256(canonical_json(value))


def _compressor_key(params: Any) -> dict[str, Any]:
    """The params plus the method's VERSION, so a changed algorithm changes every key."""
    version = COMPRESSORS.get(params.method).version
    return {**params.model_dump(mode="json"), "version": version}


def model_parts(model_ref: ModelRef) -> dict[str, str]:
    """The model's part of a variant key, as canonical JSON."""
    return {"model": canonical_json(model_ref)}


def compressor_parts(params: Any, evaluation: Evaluation) -> dict[str, str]:
    """The rest of a variant key, as canonical JSON: the compressor (with its VERSION), the
    calibration, the dtype. A variant's key is these and model_parts."""
    return {
        "compressor": canonical_json(_compressor_key(params)),
        "calibration": canonical_json(None),
        "dtype": canonical_json(evaluation.dtype),
    }


def level_parts(level: Level, evaluation: Evaluation) -> dict[str, str]:
    """What a cell adds to its variant's key, as canonical JSON: the level's config with its
    setting's VERSION, the seed, the batching."""
    setting_version = SETTINGS.get(level.setting).version
    level_key = {
        "setting": level.setting,
        "setting_version": setting_version,
        **level.config.model_dump(mode="json"),
    }
    return {
        "level": canonical_json(level_key),
        "seed": canonical_json(evaluation.seed),
        "batch_size": canonical_json(evaluation.batch_size),
        "engine": canonical_json(ENGINE_VERSION),
    }


def _members(parts: dict[str, str]) -> dict[str, str]:
    """Each part (a name and its value as canonical JSON) as its `"name":value` JSON member."""
    return {name: json.dumps(name, ensure_ascii=False) + ":" + text for name, text in parts.items()}


def _joined(members: dict[str, str]) -> str:
    """canonical_json of the mapping whose _members these are: the same text, built without
    normalising again what thousands of cells share (model, compressor, level)."""
    return "{" + ",".join([members[name] for name in sorted(members)]) + "}"


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def variants(spec: Spec) -> list[Any]:
    """The dense baseline first, then every distinct compressor params of the spec."""
    unique: dict[str, Any] = {content_hash(NoneParams()): NoneParams()}
    for params in spec.compressors:
        unique.setdefault(content_hash(params), params)
    return list(unique.values())


@dataclass(frozen=True)
class _Run:
    """A level as variants run it, its key members normalised once for all of them."""

    level: Level
    seed: int
    family_suffix: str  # what the job kind adds to the family, e.g. " (dense_frozen)", or ""
    members: dict[str, str]  # _members of level_parts


def expand(spec: Spec) -> list[Job]:
    """Every model x variant as a job holding its levels' cells; dense jobs come first. How many
    cells a level makes (seeds, modes) is the rule of the setting's job kind.

    Keys are joined from parts normalised once each (_joined), as a 100,000-cell spec has only
    a few distinct models, compressors and levels."""
    levels = spec.spectrum.expand(spec.evaluation.n_examples, spec.evaluation.seed)
    kind_name = SETTINGS.get(spec.spectrum.setting).job_kind
    kind = JOB_KINDS.get(kind_name)
    runs = {
        dense: [
            _Run(
                run.level,
                run.seed,
                run.family_suffix,
                _members(level_parts(run.level, spec.evaluation)),
            )
            for level in levels
            for run in kind.runs(spec, level, dense)
        ]
        for dense in (True, False)
    }
    for level_runs in runs.values():
        if len({run.members["level"] for run in level_runs}) < len(level_runs):
            raise ValueError(
                f"job kind {kind_name!r} runs a level twice with the same level config, so its "
                "cells would share a cell key; put what differs (a seed, a mode) in the config"
            )
    models = [(ref, ref.label(), _members(model_parts(ref))) for ref in spec.models]
    dense_method = NoneParams().method
    jobs = []
    for params in variants(spec):
        family = params.family()
        compressor = _members(compressor_parts(params, spec.evaluation))
        for model_ref, label, model in models:
            variant = {**model, **compressor}
            variant_hash = _sha256(_joined(variant))
            cells = []
            for run in runs[params.method == dense_method]:
                key_json = _joined({**variant, **run.members})
                cells.append(
                    Cell(
                        _sha256(key_json),
                        variant_hash,
                        label,
                        params,
                        run.level,
                        run.seed,
                        key_json,
                        family + run.family_suffix,
                    )
                )
            jobs.append(
                Job(variant_hash, model_ref, params, spec.evaluation, tuple(cells), kind_name)
            )
    return jobs


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
