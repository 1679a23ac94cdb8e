"""Time jd's bookkeeping at study scale: planning, a run with nothing to do, storing results.

No model loads: the specs name hub models and levels that planning never opens, and the
ingest's records are made here, as a backend would return them. Three tasks against the
targets of issue 6, each as the median of --repeat runs on fresh stores:

1. plan 100,000 cells: `jdspec.run.plan_spec` (expand, cell keys, statuses) against an
   empty store; the naive reference builds and normalises each cell's key dict whole.
2. a no-op `jd run` over 10,000 done cells: `jdspec.run.run_spec` on the store task 3 filled
   (writer lock, planning, spec membership check, nothing to run).
3. ingest 10,000 cells of 3 metrics and 5 examples: `run_spec` whose backend returns them at
   once, so only the single writer is timed (one transaction per cell); the naive reference
   opens a connection per write, as jd did before (measured on --naive-cells, scaled).
The floor rows time one commit of one row per cell on an open connection: durable (as jd
commits), and with DuckDB's fsync_mode NONE, which jd does not use (an operating system crash
could then corrupt the store), to show what the disk's fsync costs.

    python bench/bookkeeping.py                     # defaults; minutes on 2 shared CPU cores
    python bench/bookkeeping.py --plan-cells 10000 --run-cells 1000 --repeat 1   # a quick look
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import duckdb
from rich.console import Console
from rich.table import Table

from jdspec import run, store
from jdspec.compress import COMPRESSORS
from jdspec.eval.requests import ENGINE_VERSION
from jdspec.plan import Cell, content_hash, expand, variants
from jdspec.provenance import describe_run, device_description
from jdspec.results import CellResult, ExampleRecord, MetricValue
from jdspec.spec import Spec
from jdspec.tasks import SETTINGS

MODELS = 25
LEVELS = 4  # option counts 2 to 5
METRICS = ("accuracy", "accuracy_norm", "f1")
EXAMPLES = 5


def study(cells: int) -> Spec:
    """MODELS hub models x (dense + magnitude at cells / 100 - 1 sparsities) x LEVELS levels."""
    sparsities = cells // (MODELS * LEVELS) - 1
    return Spec.model_validate(
        {
            "name": f"bookkeeping-{cells}",
            "models": [{"source": "hub", "id": f"bench/model-{i}"} for i in range(MODELS)],
            "compressors": [
                {"method": "magnitude", "sparsity": round((i + 1) / (sparsities + 1), 6)}
                for i in range(sparsities)
            ],
            "spectrum": {
                "setting": "option_count",
                "dataset": {"name": "arc_easy"},
                "levels": [{"option_count": count} for count in range(2, 2 + LEVELS)],
            },
        }
    )


def naive_keys(spec: Spec) -> list[str]:
    """Every cell's hash as jd first computed it: each key a dict, normalised whole."""
    levels = spec.spectrum.expand(spec.evaluation.n_examples, spec.evaluation.seed)
    hashes = []
    for params in variants(spec):
        compressor = {
            **params.model_dump(mode="json"),
            "version": COMPRESSORS.get(params.method).version,
        }
        for model_ref in spec.models:
            variant = {
                "model": model_ref.model_dump(mode="json"),
                "compressor": compressor,
                "calibration": None,
                "dtype": spec.evaluation.dtype,
            }
            for level in levels:
                level_key = {
                    "setting": level.setting,
                    "setting_version": SETTINGS.get(level.setting).version,
                    **level.config.model_dump(mode="json"),
                }
                key = {
                    **variant,
                    "level": level_key,
                    "seed": spec.evaluation.seed,
                    "batch_size": spec.evaluation.batch_size,
                    "engine": ENGINE_VERSION,
                }
                hashes.append(content_hash(key))
    return hashes


def record(cell: Cell, index: int) -> CellResult:
    examples = tuple(
        ExampleRecord(f"q{j}", f"{index:08x}{j:08x}", "A", "B", j % 2 == 0, -1.25, (-1.25, -2.5))
        for j in range(EXAMPLES)
    )
    metrics = tuple(MetricValue(name, 0.5, EXAMPLES) for name in METRICS)
    return CellResult(cell.cell_hash, "done", time.time(), 0.01, metrics, examples, batch_size=8)


def backend_records(work: list, emit: Any, backend: Any) -> Iterator[CellResult]:
    """Stands in for `jdspec.run._records`: every cell done at once, as a backend returns it."""
    cells = [cell for _, job_cells in work for cell in job_cells]
    return (record(cell, index) for index, cell in enumerate(cells))


def timed(action: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    value = action()
    return time.perf_counter() - start, value


def empty_store(folder: Path, name: str) -> Path:
    path = folder / f"{name}.duckdb"
    with store.writing(path, "bench") as writer, writer.connection():
        pass  # the schema, no rows
    return path


def measure_plan(spec: Spec, folder: Path) -> tuple[float, float]:
    """Seconds to plan with jd, and with each key normalised whole (both with statuses)."""
    path = empty_store(folder, f"plan-{time.monotonic_ns()}")
    seconds, planned = timed(lambda: run.plan_spec(spec, path))

    def naive_plan() -> list[str]:
        hashes = naive_keys(spec)
        store.cell_states(path, hashes)
        return hashes

    naive_seconds, hashes = timed(naive_plan)
    assert [cell.cell_hash for job in planned for cell in job.job.cells] == hashes
    return seconds, naive_seconds


def measure_run(spec: Spec, folder: Path) -> tuple[float, float]:
    """Seconds to ingest every cell of `spec` into a new store, then to run it again (no-op)."""
    path = folder / f"run-{time.monotonic_ns()}.duckdb"
    with mock.patch.object(run, "_records", backend_records):
        ingest_seconds, summary = timed(lambda: run.run_spec(spec, path))
    cells = sum(len(job.cells) for job in expand(spec))
    assert (summary.done, summary.status) == (cells, "finished")
    noop_seconds, again = timed(lambda: run.run_spec(spec, path))
    assert (again.status, again.already_done) == ("nothing to do", cells)
    return ingest_seconds, noop_seconds


def measure_naive_ingest(spec: Spec, folder: Path, count: int) -> float:
    """Seconds per cell to write `count` cells, opening the store for each write."""
    path = empty_store(folder, f"naive-{time.monotonic_ns()}")
    cells = [cell for job in expand(spec) for cell in job.cells][:count]
    start = time.perf_counter()
    for index, cell in enumerate(cells):
        with store.writing(path, "bench") as writer:
            store.write_cell(writer, run.cell_row(cell, "naive"), record(cell, index))
    return (time.perf_counter() - start) / len(cells)


def measure_commit_floor(folder: Path, count: int, fsync_mode: str) -> float:
    """Seconds for `count` transactions of one row each on an open connection."""
    path = folder / f"floor-{time.monotonic_ns()}.duckdb"
    connection = duckdb.connect(str(path), config={"fsync_mode": fsync_mode})
    connection.execute("CREATE TABLE floor (cell_hash VARCHAR PRIMARY KEY)")
    start = time.perf_counter()
    for index in range(count):
        connection.execute("BEGIN")
        connection.execute("INSERT INTO floor VALUES (?)", [str(index)])
        connection.execute("COMMIT")
    seconds = time.perf_counter() - start
    connection.close()
    return seconds


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--plan-cells", type=int, default=100_000, help="a multiple of 100")
    parser.add_argument("--run-cells", type=int, default=10_000, help="a multiple of 100")
    parser.add_argument("--naive-cells", type=int, default=300, help="naive ingest sample")
    parser.add_argument("--repeat", type=int, default=3, help="runs per task; the median shows")
    return parser.parse_args()


def row(
    task: str, size: str, runs: list[float], target: float | None, naive: float | None
) -> tuple[str, ...]:
    """A table row: median and best of `runs`, whether the median meets `target`, naive / jd."""
    median = statistics.median(runs)
    verdict = "-" if target is None else ("yes" if median < target else "no")
    return (
        task,
        size,
        f"{median:.2f}",
        f"{min(runs):.2f}",
        "-" if target is None else f"< {target:g}",
        verdict,
        "-" if naive is None else f"{naive:.1f}",
        "-" if naive is None else f"{naive / median:.1f}x",
    )


def main() -> None:
    arguments = parse_arguments()
    console = Console(stderr=True)
    plan_spec, run_spec = study(arguments.plan_cells), study(arguments.run_cells)
    plans, naive_plans, ingests, noops, floors, unsynced = [], [], [], [], [], []
    device_description("auto"), describe_run()  # imports torch once: not the writer's time
    with tempfile.TemporaryDirectory() as folder:
        for attempt in range(arguments.repeat):
            console.print(f"run {attempt + 1} of {arguments.repeat}: plan, ingest, no-op run")
            seconds, naive_seconds = measure_plan(plan_spec, Path(folder))
            plans.append(seconds)
            naive_plans.append(naive_seconds)
            ingest_seconds, noop_seconds = measure_run(run_spec, Path(folder))
            ingests.append(ingest_seconds)
            noops.append(noop_seconds)
            floors.append(measure_commit_floor(Path(folder), arguments.run_cells, "STANDARD"))
            unsynced.append(measure_commit_floor(Path(folder), arguments.run_cells, "NONE"))
        console.print(f"naive ingest: {arguments.naive_cells} cells, a connection per write")
        per_cell = measure_naive_ingest(run_spec, Path(folder), arguments.naive_cells)
    table = Table(
        title=f"jd bookkeeping; seconds, median and best of {arguments.repeat}; naive / jd "
        "compares medians"
    )
    columns = ("task", "size", "jd s", "best s", "target s", "met", "naive s", "naive / jd")
    for column in columns:
        table.add_column(column, justify="left" if column in ("task", "size") else "right")
    run_cells = f"{arguments.run_cells:,} cells"
    # The targets hold at its sizes only.
    plan_target = 2.0 if arguments.plan_cells == 100_000 else None
    run_target, ingest_target = (2.0, 5.0) if arguments.run_cells == 10_000 else (None, None)
    plan_size, naive_plan = f"{arguments.plan_cells:,} cells", statistics.median(naive_plans)
    table.add_row(*row("plan (keys + statuses)", plan_size, plans, plan_target, naive_plan))
    table.add_row(*row("no-op jd run", f"{run_cells} done", noops, run_target, None))
    ingest_size = f"{run_cells} x {len(METRICS)} metrics, {EXAMPLES} examples"
    naive_ingest = per_cell * arguments.run_cells
    table.add_row(*row("ingest (jd run)", ingest_size, ingests, ingest_target, naive_ingest))
    floor_size = f"{arguments.run_cells:,} commits"
    table.add_row(*row("floor: 1 commit per cell", floor_size, floors, None, None))
    table.add_row(*row("floor without fsync", floor_size, unsynced, None, None))
    Console(width=140).print(table)
    console.print(
        f"naive ingest: {per_cell * 1000:.1f} ms per cell over its first {arguments.naive_cells} "
        "cells, scaled to all (a lower bound: each reopening costs more as the store grows)"
    )


if __name__ == "__main__":
    main()
