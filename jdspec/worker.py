"""What runs a job anywhere (in-process, a process pool, a Ray task): load, compress, evaluate.

A worker never opens the database: it yields plain records and the one writer stores them.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Iterator

import torch

from jdspec.compress import apply_compressor
from jdspec.evaluate import score_loglikelihood
from jdspec.models import load_model
from jdspec.plan import Cell, Job
from jdspec.results import CellResult, Progress, VariantResult
from jdspec.tasks import mcq

ProgressCallback = Callable[[Progress], None]


def execute_job(
    job: Job, cells: tuple[Cell, ...], on_progress: ProgressCallback | None = None
) -> Iterator[VariantResult | CellResult]:
    """Load the model once, compress it once, then evaluate each pending cell on it.

    A failure while loading or compressing fails every cell of the job; a failure in one
    cell fails only that cell. Either way the traceback is kept with the cell.
    """
    torch.manual_seed(job.evaluation.seed)
    started = time.time()
    try:
        model, tokenizer = load_model(job.model_ref, job.evaluation.dtype, job.evaluation.device)
        record = apply_compressor(model, job.compressor, tokenizer)
    except Exception:
        error = traceback.format_exc()
        for cell in cells:
            yield CellResult(cell.cell_hash, "failed", started, time.time() - started, error=error)
        return
    yield VariantResult(job.variant_hash, record)
    for cell in cells:
        yield evaluate_cell(model, tokenizer, cell, job.evaluation.batch_size, on_progress)


def evaluate_cell(
    model: torch.nn.Module,
    tokenizer: object,
    cell: Cell,
    batch_size: int,
    on_progress: ProgressCallback | None = None,
) -> CellResult:
    """Build the level's requests, score them in batches, turn scores into metrics."""
    started = time.time()
    try:
        level = cell.level.config
        items, data = mcq.select_items(level)
        requests = [mcq.build_request(level, item, data) for item in items]
        done = 0

        def advance(finished: int) -> None:
            nonlocal done
            done += finished
            if on_progress:
                on_progress(Progress(cell.cell_hash, done, len(requests)))

        scores = score_loglikelihood(model, tokenizer, requests, batch_size, advance)
        result = mcq.score(level, items, requests, scores)
    except Exception:
        return CellResult(
            cell.cell_hash, "failed", started, time.time() - started, error=traceback.format_exc()
        )
    return CellResult(
        cell.cell_hash,
        "done",
        started,
        time.time() - started,
        metrics=result.metrics,
        examples=result.examples,
    )
