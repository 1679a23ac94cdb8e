"""Orchestration: compare a spec's cells with the store, run what is missing, persist as it lands.

The process running this is the only writer of the store; workers (the backend) only return
records. Every cell is committed on its own, so a crash or Ctrl-C loses at most the cell in flight.
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from jdspec import store
from jdspec.cache import remove_checkpoint
from jdspec.plan import (
    Cell,
    PlannedJob,
    all_cells,
    attach_statuses,
    content_hash,
    expand,
)
from jdspec.provenance import describe_run, device_description
from jdspec.results import CellResult, JobsRunning, Progress, VariantResult, Waiting
from jdspec.spec import Spec


@dataclass(frozen=True)
class Backend:
    """Where jobs run: in this process, or as Ray tasks (`address` None starts a local Ray for
    the run; "auto" or a cluster's host:port joins it) with a GPU request per job."""

    name: Literal["local", "ray"] = "local"
    address: str | None = None
    gpus_per_job: float = 0.0


@dataclass(frozen=True)
class RunStarted:
    run_id: str
    cell_count: int
    job_count: int


@dataclass(frozen=True)
class CellFinished:
    cell: Cell
    result: CellResult


@dataclass(frozen=True)
class RunSummary:
    run_id: str | None
    done: int
    failed: int
    already_done: int  # cells the store held before this run
    left: int  # cells neither done nor run: beyond --limit, or failed ones without --resume
    status: str  # "nothing to do" | "finished" | "interrupted"
    seconds: float


RunEvent = RunStarted | CellFinished | Progress | JobsRunning
EventCallback = Callable[[RunEvent], None]


def plan_spec(spec: Spec, source: store.Source) -> list[PlannedJob]:
    """The spec's jobs with each cell's status in the store (new, done or failed)."""
    jobs = expand(spec)
    states = store.cell_states(source, [cell.cell_hash for cell in all_cells(jobs)])
    return attach_statuses(jobs, dict(zip(states["cell_hash"], states["status"], strict=True)))


def level_rows(spec: Spec) -> list[dict[str, Any]]:
    """The spectrum's levels in difficulty order, with how each difficulty is known."""
    levels = spec.spectrum.expand(spec.evaluation.n_examples, spec.evaluation.seed)
    rows = []
    for level in levels:
        if level.human is not None:
            known = f"after the dense run: ({level.human:g} - dense) / {level.human:g}"
        else:
            known = "fixed when planned" if level.difficulty is not None else "unknown"
        rows.append(
            {
                "setting": level.setting,
                "level": level.label,
                "difficulty": level.difficulty,
                "human": level.human,
                "difficulty from": known,
                "kind": level.config.kind,
            }
        )
    return rows


def explain_cells(spec: Spec, store_path: Path) -> list[dict[str, Any]]:
    """For each cell: its status and why (no stored row; stored by run R; failed with E)."""
    cells = all_cells(expand(spec))
    states = store.cell_states(store_path, [cell.cell_hash for cell in cells])
    by_hash = {row.cell_hash: row for row in states.itertuples()}
    explained = []
    for cell in cells:
        row = by_hash.get(cell.cell_hash)
        if row is None:
            status, reason = "new", "the store has no cell with this key"
        elif row.status == "done":
            status, reason = "done", f"stored by run {row.run_id} at {row.finished_at}"
        else:
            last_line = (row.error or "").strip().splitlines()[-1:] or ["unknown error"]
            status, reason = "failed", f"run {row.run_id} failed: {last_line[0]}"
        explained.append({**cell_row(cell), "status": status, "reason": reason})
    return explained


def cell_row(cell: Cell, run_id: str = "") -> dict[str, Any]:
    """The flattened columns stored beside a cell's JSON key."""
    return {
        "cell_hash": cell.cell_hash,
        "variant_hash": cell.variant_hash,
        "run_id": run_id,
        "model": cell.model,
        "method": cell.method,
        "family": cell.family,
        "strength_name": cell.compressor.strength_name(),
        "strength": cell.compressor.strength(),
        "setting": cell.level.setting,
        "level": cell.level.label,
        "seed": cell.seed,
        "cell": cell.key_json,
    }


def run_spec(
    spec: Spec,
    store_path: Path,
    retry_failed: bool = False,
    limit: int | None = None,
    on_event: EventCallback | None = None,
    backend: Backend = Backend(),
    force: bool = False,
) -> RunSummary:
    """Run every cell that is not done (and failed ones with retry_failed, done ones too with
    force: their old rows move to the store's history tables), at most `limit`."""
    started = time.time()
    description = f"jd run {spec.name}, started {time.strftime('%Y-%m-%d %H:%M:%S')}"
    with store.writing(store_path, description) as writer:
        planned = plan_spec(spec, writer)
        _register_members(spec, planned, writer)
        work = _pending_work(planned, retry_failed, limit, force)
        cell_count = sum(len(cells) for _, cells in work)
        already_done = sum(job.statuses.count("done") for job in planned)
        left = _left_count(planned, work)
        if not work:
            return RunSummary(
                None, 0, 0, already_done, left, "nothing to do", time.time() - started
            )
        emit = on_event or (lambda event: None)

        def on_backend_event(event: RunEvent) -> None:
            if isinstance(event, Progress):  # a cell is being computed: let readers in
                writer.release_if_idle()
            emit(event)

        # a backend that cannot start (no Ray, no cluster) fails before a run is recorded
        records = _records(work, on_backend_event, backend)
        run_id = _begin(spec, writer, cell_count)
        emit(RunStarted(run_id, cell_count, len(work)))
        counts = {"done": 0, "failed": 0}
        status = "interrupted"  # unless the loop ends normally: Ctrl-C, a crash
        try:
            _execute(records, work, writer, run_id, emit, counts)
            status = "finished"
        finally:
            store.finish_run(writer, run_id, status, counts["done"], counts["failed"])
    return RunSummary(
        run_id, counts["done"], counts["failed"], already_done, left, status, time.time() - started
    )


def _execute(
    records: Iterator[VariantResult | CellResult | Waiting],
    work: list[tuple[Any, tuple[Cell, ...]]],
    writer: store.Writer,
    run_id: str,
    emit: EventCallback,
    counts: dict[str, int],
) -> None:
    """Store each record as it arrives: the single writer; `counts` tallies cells."""
    cells_by_hash = {cell.cell_hash: cell for _, cells in work for cell in cells}
    for record in records:
        if isinstance(record, Waiting):
            writer.release()  # nothing to store for a while: readers may open the store
            continue
        if isinstance(record, VariantResult):
            store.write_variant(writer, record, run_id)
            continue
        cell = cells_by_hash[record.cell_hash]
        store.write_cell(writer, cell_row(cell, run_id), record)
        if record.status == "done":
            remove_checkpoint(cell.cell_hash)  # a training cell's last epoch, now stored
        counts[record.status] += 1
        emit(CellFinished(cell, record))


def _records(
    work: list[tuple[Any, tuple[Cell, ...]]], emit: EventCallback, backend: Backend
) -> Iterator[VariantResult | CellResult | Waiting]:
    """The backend's records as they arrive; torch, transformers and Ray load only when used.
    Ray connects when this is called, the records flow when iterated."""
    if backend.name == "ray":
        from jdspec.backends.ray import run_jobs as run_on_ray

        return run_on_ray(work, emit, backend.address, backend.gpus_per_job)
    from jdspec.backends.local import run_jobs

    return run_jobs(work, emit)


def _pending_work(
    planned: list[PlannedJob], retry_failed: bool, limit: int | None, force: bool = False
) -> list[tuple[Any, tuple[Cell, ...]]]:
    """The first `limit` cells to run, by job: new ones, failed ones with retry_failed, and
    with force done ones too."""
    work, remaining = [], limit if limit is not None else sys.maxsize
    for job in planned:
        cells = _wanted(job, retry_failed, force)[:remaining]
        if cells:
            work.append((job.job, cells))
            remaining -= len(cells)
    return work


def _wanted(job: PlannedJob, retry_failed: bool, force: bool) -> tuple[Cell, ...]:
    if not force:
        return job.pending(retry_failed)
    pairs = zip(job.job.cells, job.statuses, strict=True)
    return tuple(cell for cell, status in pairs if retry_failed or status != "failed")


def _left_count(planned: list[PlannedJob], work: list[tuple[Any, tuple[Cell, ...]]]) -> int:
    """Cells neither done nor about to run."""
    running = {cell.cell_hash for _, cells in work for cell in cells}
    return sum(
        status != "done" and cell.cell_hash not in running
        for job in planned
        for cell, status in zip(job.job.cells, job.statuses, strict=True)
    )


def _members(spec: Spec, planned: list[PlannedJob]) -> pd.DataFrame:
    cells = [cell for job in planned for cell in job.job.cells]
    return pd.DataFrame(
        {
            "spec": spec.name,
            "cell_hash": [cell.cell_hash for cell in cells],
            "level": [cell.level.label for cell in cells],
            "difficulty": [cell.level.difficulty for cell in cells],
        }
    )


def _register_members(spec: Spec, planned: list[PlannedJob], writer: store.Writer) -> None:
    """Make the store know which cells this spec holds, writing only when something is new."""
    members = _members(spec, planned)
    known = store.read_frame(
        writer, "SELECT cell_hash, level, difficulty FROM spec_cells WHERE spec = ?", [spec.name]
    )
    if len(known) and _member_keys(known) >= _member_keys(members):
        return
    store.write_members(writer, members)


def _member_keys(members: pd.DataFrame) -> set[tuple[str, str, float | None]]:
    """(cell, level, difficulty) with a missing difficulty (NULL, NaN or None) as None."""
    return {
        (cell_hash, level, None if pd.isna(difficulty) else float(difficulty))
        for cell_hash, level, difficulty in zip(
            members.cell_hash, members.level, members.difficulty, strict=True
        )
    }


def _begin(spec: Spec, writer: store.Writer, cell_count: int) -> str:
    run_id = time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
    store.begin_run(
        writer,
        {
            "run_id": run_id,
            "spec": spec.name,
            "spec_hash": content_hash(spec),
            "command": " ".join(sys.argv),
            "status": "running",
            "started_at": pd.Timestamp.now(),
            "pid": os.getpid(),
            "device": device_description(spec.evaluation.device),
            "seed": spec.evaluation.seed,
            "cells_planned": cell_count,
            **describe_run(),
        },
    )
    return run_id


def report_rows(spec: Spec, store_path: Path) -> pd.DataFrame:
    """The spec's done results, one row per cell, metric and step, with this spec's levels.

    A reported metric brings its measurements along the way (step not null): per epoch, per
    point of a connectivity line.

    Levels measured against people (setting 5) get their difficulty from the dense rows here.
    """
    from jdspec.stats import human_gap_difficulty  # scipy: only when reporting

    cells = all_cells(expand(spec))
    metrics = spec.reported_metrics()
    wanted = pd.DataFrame(
        {
            "cell_hash": [cell.cell_hash for cell in cells],
            "level": [cell.level.label for cell in cells],
            "difficulty": [cell.level.difficulty for cell in cells],
            "human": [cell.level.human for cell in cells],
        },
    ).astype({"difficulty": float, "human": float})
    stored = store.done_results(store_path, wanted["cell_hash"].tolist())
    if stored.empty:
        return stored
    rows = stored.merge(wanted, on="cell_hash")
    rows = rows[rows["metric"].isin(metrics)].assign(spec=spec.name)
    return human_gap_difficulty(rows.reset_index(drop=True))
