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

from jdspec.eval.requests import LoglikelihoodRequest

# A longer shared prefix is scored by the tail passes, so the context pass's log-probs stay small.
MAX_SHARED_TOKENS = 64
# What one more forward pass costs beyond its tokens (kernel launches, Python), in token slots.
PASS_COST_SLOTS = 64


def score_loglikelihood(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    requests: Sequence[LoglikelihoodRequest],
    batch_size: int,
    on_progress: Callable[[int], None] | None = None,
) -> list[tuple[float, ...]]:
    """Sum of log-probabilities of each continuation's tokens given its context, per request.

    `batch_size` means what it means to lm-evaluation-harness: that many whole sequences
    (context and continuation) per pass. jd fills a pass with the same number of token slots,
    batch_size x the longest sequence, but spends none of them on repeated contexts.
    `on_progress` receives the number of requests finished after each batch of contexts.
    """
    encoded = [_encode(tokenizer, request) for request in requests]
    shared = [_shared_prefix(continuations) for _, continuations in encoded]
    widths = [
        len(context_ids) + len(prefix)
        for (context_ids, _), prefix in zip(encoded, shared, strict=True)
    ]
    # Widest context pass first (context and shared prefix): little of a batch is padding.
    order = sorted(range(len(encoded)), key=lambda index: -widths[index])
    budget = batch_size * max((_longest(item) for item in encoded), default=1)
    pad_id = _pad_token_id(tokenizer)
    scores: list[tuple[float, ...]] = [() for _ in requests]
    with torch.inference_mode():
        for batch in _context_batches(order, widths, budget):
            batch_scores = _score_batch(
                model,
                [encoded[index] for index in batch],
                [shared[index] for index in batch],
                budget,
                pad_id,
            )
            for index, request_scores in zip(batch, batch_scores, strict=True):
                scores[index] = request_scores
            if on_progress is not None:
                on_progress(len(batch))
    return scores


def _context_batches(order: list[int], widths: list[int], budget: int) -> list[list[int]]:
    """Consecutive requests (widest first) in passes of at most `budget` padded slots."""
    sorted_widths = [widths[index] for index in order]
    return [
        order[start:end] for start, end in _cheapest_split(sorted_widths, sorted_widths, budget)
    ]


def _longest(encoded: tuple[list[int], list[list[int]]]) -> int:
    context_ids, continuations = encoded
    return len(context_ids) + max((len(ids) for ids in continuations), default=0)


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
        context_ids = empty_context_ids(tokenizer)
    return context_ids, continuation_ids


def empty_context_ids(tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """What an empty context becomes: BOS (EOS if there is none), as lm-evaluation-harness
    scores a continuation with nothing before it."""
    prefix_id = tokenizer.bos_token_id
    return [prefix_id if prefix_id is not None else tokenizer.eos_token_id]


def _pad_token_id(tokenizer: PreTrainedTokenizerBase) -> int:
    """Any valid id will do: padded slots are masked out and never scored."""
    for token_id in (tokenizer.pad_token_id, tokenizer.eos_token_id):
        if token_id is not None:
            return token_id
    return 0


def _shared_prefix(continuations: list[list[int]]) -> list[int]:
    """The tokens every continuation starts with (all of it for a single continuation).

    They are scored once, inside the context's forward pass: PIQA's two solutions often differ
    only in their last words, and one continuation (WinoGrande, perplexity) needs no tail pass.
    """
    if not continuations:
        return []
    shared = continuations[0]
    for other in continuations[1:]:
        length = 0
        for mine, theirs in zip(shared, other, strict=False):
            if mine != theirs:
                break
            length += 1
        shared = shared[:length]
    return shared[:MAX_SHARED_TOKENS]


def _score_batch(
    model: nn.Module,
    batch: list[tuple[list[int], list[list[int]]]],
    shared: list[list[int]],
    budget: int,
    pad_id: int,
) -> list[tuple[float, ...]]:
    """Scores of one batch of contexts: one forward for the contexts, then the tails by cache.

    Each context is extended by its continuations' shared prefix (`shared`, one per context);
    what follows the prefix is scored from the cache, the first token from the context pass.
    """
    contexts = [
        context_ids + prefix for (context_ids, _), prefix in zip(batch, shared, strict=True)
    ]
    rests = [
        [continuation_ids[len(prefix) :] for continuation_ids in continuations]
        for (_, continuations), prefix in zip(batch, shared, strict=True)
    ]
    cache = DynamicCache(config=model.config)
    logprobs, context_mask = _run_contexts(model, contexts, cache, pad_id, shared)
    prefix_sums = _prefix_logprobs(logprobs, shared)
    sums = _first_token_logprobs(logprobs[:, -1], rests)
    pairs = [
        (row, column)
        for row, row_rests in enumerate(rests)
        for column, rest in enumerate(row_rests)
        if len(rest) > 1
    ]
    # Tails of similar length share a forward, so little of it is padding.
    pairs.sort(key=lambda pair: -len(rests[pair[0]][pair[1]]))
    widths = [len(rests[row][column]) - 1 for row, column in pairs]
    # A tail row also holds its context's cached keys and values.
    memory = [max(len(ids) for ids in contexts) + width for width in widths]
    for start, end in _cheapest_split(widths, memory, budget):
        chunk = pairs[start:end]
        rows = [row for row, _ in chunk]
        tails = [rests[row][column] for row, column in chunk]
        lengths = [len(contexts[row]) for row in rows]
        tail_sums = _run_tails(model, cache, context_mask, rows, lengths, tails, pad_id)
        for (row, column), tail_sum in zip(chunk, tail_sums, strict=True):
            sums[row][column] += tail_sum
    return [
        tuple(prefix_sum + value for value in row_sums)
        for prefix_sum, row_sums in zip(prefix_sums, sums, strict=True)
    ]


def _cheapest_split(widths: list[int], memory: list[int], budget: int) -> list[tuple[int, int]]:
    """(start, end) ranges cutting rows sorted widest first into passes that waste least.

    A pass is as wide as its first row, so it costs rows x widths[start] slots plus a fixed
    PASS_COST_SLOTS; it may hold at most `budget` slots of memory, rows x memory[start] (a
    single row always fits). Dynamic programming over cut points finds the cheapest split.
    """
    count = len(widths)
    best = [0.0] + [float("inf")] * count  # best[end]: cost of splitting rows[:end]
    cut = [0] * (count + 1)
    for end in range(1, count + 1):
        for start in range(end - 1, -1, -1):
            rows = end - start
            if rows > 1 and rows * memory[start] > budget:
                break
            cost = best[start] + rows * widths[start] + PASS_COST_SLOTS
            if cost < best[end]:
                best[end], cut[end] = cost, start
    ranges = []
    end = count
    while end > 0:
        ranges.append((cut[end], end))
        end = cut[end]
    return ranges[::-1]


def _run_contexts(
    model: nn.Module, contexts: list[list[int]], cache: Cache, pad_id: int, shared: list[list[int]]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fill `cache` with the left-padded contexts; return log-probs of the last positions and
    the mask.

    Returns (rows, positions, vocab) float32 log-probabilities of the last positions, enough to
    score every row's shared prefix and the token after it, and the (rows, width) context mask.
    """
    device = next(model.parameters()).device
    input_ids, attention_mask = left_pad(contexts, pad_id, device)
    logits = model(
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=(attention_mask.cumsum(-1) - 1).clamp(min=0),
        use_cache=True,
        logits_to_keep=1 + max(len(prefix) for prefix in shared),
        **{_cache_keyword(model): cache},
    ).logits
    return torch.log_softmax(widened(logits), dim=-1), attention_mask


def widened(logits: torch.Tensor) -> torch.Tensor:
    """Logits in float32 at least: bfloat16 and float16 are widened before the softmax, as
    lm-evaluation-harness scores them, and a float64 model keeps its precision."""
    return logits.to(torch.promote_types(logits.dtype, torch.float32))


def left_pad(
    contexts: list[list[int]], pad_id: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """(rows, width) ids and attention mask, each context right-aligned so all end together."""
    width = max((len(ids) for ids in contexts), default=0)
    input_ids = torch.full((len(contexts), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(contexts), width), dtype=torch.long)
    for row, ids in enumerate(contexts):
        input_ids[row, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
        attention_mask[row, width - len(ids) :] = 1
    return input_ids.to(device), attention_mask.to(device)


def _prefix_logprobs(logprobs: torch.Tensor, shared: list[list[int]]) -> list[float]:
    """Each row's log-prob of its shared prefix, read from the context pass's last positions."""
    kept = logprobs.shape[1]
    rows, positions, tokens = [], [], []
    for row, prefix in enumerate(shared):
        # Token k of the prefix is predicted at position kept - 1 - len(prefix) + k.
        first = kept - 1 - len(prefix)
        rows.extend([row] * len(prefix))
        positions.extend(range(first, first + len(prefix)))
        tokens.extend(prefix)
    sums = [0.0] * len(shared)
    if tokens:
        device = logprobs.device
        values = logprobs[
            torch.tensor(rows, device=device),
            torch.tensor(positions, device=device),
            torch.tensor(tokens, device=device),
        ].double()
        for row, value in zip(rows, values.tolist(), strict=True):
            sums[row] += value
    return sums


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
    logprobs = torch.log_softmax(widened(logits), dim=-1)
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
