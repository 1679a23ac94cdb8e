"""Run jobs one after another in this process."""

from __future__ import annotations

from collections.abc import Iterator

from jdspec.jobs import ProgressCallback, execute_job
from jdspec.plan import Cell, Job
from jdspec.results import CellResult, VariantResult, Waiting


def run_jobs(
    work: list[tuple[Job, tuple[Cell, ...]]], on_progress: ProgressCallback | None = None
) -> Iterator[VariantResult | CellResult | Waiting]:
    """Each job's records, in order, as soon as each is ready."""
    for job, cells in work:
        yield Waiting()  # the model loads and compresses first
        yield from execute_job(job, cells, on_progress)
