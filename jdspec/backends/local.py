"""Run jobs one after another in this process."""

from __future__ import annotations

from collections.abc import Iterator

from jdspec.eval.job import ProgressCallback, execute_job
from jdspec.plan import Cell, Job
from jdspec.results import CellResult, VariantResult


def run_jobs(
    work: list[tuple[Job, tuple[Cell, ...]]], on_progress: ProgressCallback | None = None
) -> Iterator[VariantResult | CellResult]:
    """Each job's records, in order, as soon as each is ready."""
    for job, cells in work:
        yield from execute_job(job, cells, on_progress)
