"""The evaluation job kind's runner: load the model, compress it once, evaluate each level.

It runs wherever the backend runs jobs (in-process, a Ray task) and never opens the database:
it yields plain records and the one writer stores them.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from typing import Any, cast

import torch
from transformers import PreTrainedTokenizerBase

from jdspec.compress import apply_compressor
from jdspec.eval.batching import BatchSize, resolve_batch_size
from jdspec.eval.generate import generate_greedy
from jdspec.eval.loglikelihood import score_loglikelihood
from jdspec.eval.requests import GenerationRequest, LoglikelihoodRequest
from jdspec.jobs import ProgressCallback
from jdspec.models import load_model
from jdspec.plan import Cell, Job
from jdspec.results import CellResult, Progress, VariantResult
from jdspec.tasks import TASK_KINDS


def evaluate_job(
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
    tokenizer: PreTrainedTokenizerBase,
    cell: Cell,
    batch_size: BatchSize,
    on_progress: ProgressCallback | None = None,
) -> CellResult:
    """Build the level's requests, answer them in batches, turn the answers into metrics."""
    started = time.time()
    try:
        level = cell.level.config
        task = TASK_KINDS.get(level.kind)
        items, requests = task.build(level)
        size = resolve_batch_size(model, batch_size, _longest_tokens(tokenizer, requests))
        done = 0

        def advance(finished: int) -> None:
            nonlocal done
            done += finished
            if on_progress:
                on_progress(Progress(cell.cell_hash, done, len(requests)))

        answers = answer_requests(model, tokenizer, requests, size, advance)
        result = task.score(level, items, requests, answers)
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
        batch_size=size,
    )


def answer_requests(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    requests: Sequence[LoglikelihoodRequest | GenerationRequest],
    batch_size: int,
    on_progress: Callable[[int], None] | None = None,
) -> list[Any]:
    """Log-likelihoods for scoring requests, greedy answers for generation requests."""
    if all(isinstance(request, LoglikelihoodRequest) for request in requests):
        scoring = cast(Sequence[LoglikelihoodRequest], requests)
        return score_loglikelihood(model, tokenizer, scoring, batch_size, on_progress)
    if all(isinstance(request, GenerationRequest) for request in requests):
        prompts = cast(Sequence[GenerationRequest], requests)
        return generate_greedy(model, tokenizer, prompts, batch_size, on_progress)
    raise TypeError("a level's requests must all be of one kind")


def _longest_tokens(
    tokenizer: PreTrainedTokenizerBase, requests: Sequence[LoglikelihoodRequest | GenerationRequest]
) -> int:
    """Tokens in the longest sequence a batch will hold, for probing an "auto" batch size."""
    if not requests:
        return 1
    if isinstance(requests[0], GenerationRequest):
        longest = max(requests, key=lambda request: len(request.context))
        return len(tokenizer(longest.context).input_ids) + longest.max_new_tokens
    longest = max(
        requests,
        key=lambda request: len(request.context) + max(map(len, request.continuations), default=0),
    )
    text = longest.context + max(longest.continuations, key=len, default="")
    return len(tokenizer(text).input_ids)
