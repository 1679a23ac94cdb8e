"""Log-likelihood of continuations, defined as lm-evaluation-harness's `loglikelihood`.

Each context runs through the model once; the continuations after it reuse its KV cache. Contexts
are left-padded: every context then ends at the same cache slot, so a tail's distance to each
context token in cache slots equals its distance in positions. Sliding-window layers (Gemma 2/3,
Mistral) measure their window in cache slots and keep only the newest `window - 1` slots, which
is only right when no row has padding after its last real token.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable, Sequence

import torch
from torch import nn
from transformers import Cache, DynamicCache, PreTrainedTokenizerBase

from jdspec.requests import LoglikelihoodRequest


def score_loglikelihood(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    requests: Sequence[LoglikelihoodRequest],
    batch_size: int,
    on_progress: Callable[[int], None] | None = None,
) -> list[tuple[float, ...]]:
    """Sum of log-probabilities of each continuation's tokens given its context, per request.

    `on_progress` receives the number of requests finished after each batch of contexts.
    """
    encoded = [_encode(tokenizer, request) for request in requests]
    # Longest contexts first keeps padding within a batch low.
    order = sorted(range(len(encoded)), key=lambda index: -len(encoded[index][0]))
    pad_id = _pad_token_id(tokenizer)
    scores: list[tuple[float, ...]] = [() for _ in requests]
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            batch_scores = _score_batch(
                model, [encoded[index] for index in batch], batch_size, pad_id
            )
            for index, request_scores in zip(batch, batch_scores, strict=True):
                scores[index] = request_scores
            if on_progress is not None:
                on_progress(len(batch))
    return scores


def _encode(
    tokenizer: PreTrainedTokenizerBase, request: LoglikelihoodRequest
) -> tuple[list[int], list[list[int]]]:
    """Context ids and each continuation's ids, split as lm-evaluation-harness splits them.

    The context's trailing whitespace belongs to the continuation, and a continuation's ids are
    what encoding context + continuation adds past the context's own ids.
    """
    context = request.context.rstrip()
    trailing_whitespace = request.context[len(context) :]
    context_ids = list(tokenizer(context).input_ids)
    continuation_ids = [
        list(tokenizer(context + trailing_whitespace + continuation).input_ids[len(context_ids) :])
        for continuation in request.continuations
    ]
    if not context_ids:
        prefix_id = tokenizer.bos_token_id
        context_ids = [prefix_id if prefix_id is not None else tokenizer.eos_token_id]
    return context_ids, continuation_ids


def _pad_token_id(tokenizer: PreTrainedTokenizerBase) -> int:
    """Any valid id will do: padded slots are masked out and never scored."""
    for token_id in (tokenizer.pad_token_id, tokenizer.eos_token_id):
        if token_id is not None:
            return token_id
    return 0


def _score_batch(
    model: nn.Module,
    batch: list[tuple[list[int], list[list[int]]]],
    batch_size: int,
    pad_id: int,
) -> list[tuple[float, ...]]:
    """Scores of one batch of contexts: one forward for the contexts, then the tails by cache."""
    contexts = [context_ids for context_ids, _ in batch]
    cache = DynamicCache(config=model.config)
    first_logprobs, context_mask = _run_contexts(model, contexts, cache, pad_id)
    sums = _first_token_logprobs(first_logprobs, [continuations for _, continuations in batch])
    pairs = [
        (row, column)
        for row, (_, continuations) in enumerate(batch)
        for column, continuation_ids in enumerate(continuations)
        if len(continuation_ids) > 1
    ]
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start : start + batch_size]
        rows = [row for row, _ in chunk]
        tails = [batch[row][1][column] for row, column in chunk]
        lengths = [len(contexts[row]) for row in rows]
        tail_sums = _run_tails(model, cache, context_mask, rows, lengths, tails, pad_id)
        for (row, column), tail_sum in zip(chunk, tail_sums, strict=True):
            sums[row][column] += tail_sum
    return [tuple(row_sums) for row_sums in sums]


def _run_contexts(
    model: nn.Module, contexts: list[list[int]], cache: Cache, pad_id: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fill `cache` with the left-padded contexts; return next-token log-probs and the mask.

    Returns (rows, vocab) float32 log-probabilities and the (rows, width) context mask.
    """
    device = next(model.parameters()).device
    width = max(len(ids) for ids in contexts)
    input_ids = torch.full((len(contexts), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(contexts), width), dtype=torch.long)
    for row, ids in enumerate(contexts):
        input_ids[row, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
        attention_mask[row, width - len(ids) :] = 1
    position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    attention_mask = attention_mask.to(device)
    logits = model(
        input_ids=input_ids.to(device),
        attention_mask=attention_mask,
        position_ids=position_ids.to(device),
        use_cache=True,
        logits_to_keep=1,
        **{_cache_keyword(model): cache},
    ).logits
    return torch.log_softmax(logits[:, -1].float(), dim=-1), attention_mask


def _first_token_logprobs(
    first_logprobs: torch.Tensor, continuations: list[list[list[int]]]
) -> list[list[float]]:
    """Each continuation's first-token log-prob (0.0 for an empty continuation), as floats."""
    rows, tokens, slots = [], [], []
    for row, row_continuations in enumerate(continuations):
        for column, continuation_ids in enumerate(row_continuations):
            if continuation_ids:
                rows.append(row)
                tokens.append(continuation_ids[0])
                slots.append((row, column))
    sums = [[0.0] * len(row_continuations) for row_continuations in continuations]
    if slots:
        index = torch.tensor(rows, device=first_logprobs.device)
        token = torch.tensor(tokens, device=first_logprobs.device)
        values = first_logprobs[index, token].double().tolist()
        for (row, column), value in zip(slots, values, strict=True):
            sums[row][column] = value
    return sums


def _run_tails(
    model: nn.Module,
    cache: Cache,
    context_mask: torch.Tensor,
    rows: list[int],
    context_lengths: list[int],
    tails: list[list[int]],
    pad_id: int,
) -> list[float]:
    """Sum of log-probs of tokens 2..n of each tail, continuing its context's row of `cache`."""
    device = context_mask.device
    width = max(len(tail) for tail in tails) - 1
    input_ids = torch.full((len(tails), width), pad_id, dtype=torch.long)
    targets = torch.zeros((len(tails), width), dtype=torch.long)
    tail_mask = torch.zeros((len(tails), width), dtype=torch.long)
    for index, tail in enumerate(tails):
        input_ids[index, : len(tail) - 1] = torch.tensor(tail[:-1], dtype=torch.long)
        targets[index, : len(tail) - 1] = torch.tensor(tail[1:], dtype=torch.long)
        tail_mask[index, : len(tail) - 1] = 1
    row_index = torch.tensor(rows, device=device)
    # The cache is left-padded to a common width, so positions come from each context's length.
    position_ids = torch.tensor(context_lengths)[:, None] + torch.arange(width)
    tail_mask = tail_mask.to(device)
    logits = model(
        input_ids=input_ids.to(device),
        attention_mask=torch.cat([context_mask[row_index], tail_mask], dim=1),
        position_ids=position_ids.to(device),
        use_cache=True,
        **{_cache_keyword(model): _select_rows(cache, row_index)},
    ).logits
    logprobs = torch.log_softmax(logits.float(), dim=-1)
    target_logprobs = logprobs.gather(-1, targets.to(device)[..., None])[..., 0].double()
    return torch.where(tail_mask.bool(), target_logprobs, 0.0).sum(-1).tolist()


def _select_rows(cache: Cache, rows: torch.Tensor) -> Cache:
    """A cache holding `rows` of `cache` (repeats allowed), leaving `cache` itself untouched.

    A forward appends to the cache it is given; selecting makes new tensors, so shallow copies of
    the layers suffice to keep the context's cache for the next chunk of tails.
    """
    selected = copy.copy(cache)
    selected.layers = [copy.copy(layer) for layer in cache.layers]
    selected.batch_select_indices(rows)
    return selected


def _cache_keyword(model: nn.Module) -> str:
    """The forward argument taking a cache: `past_key_values` until transformers 5, then `cache`."""
    parameters = inspect.signature(model.forward).parameters
    return "cache" if "cache" in parameters else "past_key_values"
