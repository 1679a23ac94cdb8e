"""Greedy generation cut at stop sequences, as lm-evaluation-harness's `generate_until`.

Prompts are left-padded and run once into a KV cache, as in evaluate.py; then every unfinished
row decodes one token per step. Rows leave the batch (and the cache) as they finish, so a short
answer costs nothing while a long one in its batch runs on. Decoding appends one real token to
every row each step, so no row ever has padding after its last real token, which is what
sliding-window layers need (see evaluate.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn
from transformers import DynamicCache, PreTrainedTokenizerBase

from jdspec.eval.loglikelihood import (
    _cache_keyword,
    _pad_token_id,
    empty_context_ids,
    left_pad,
    widened,
)
from jdspec.eval.requests import Generation, GenerationRequest


def generate_greedy(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    requests: Sequence[GenerationRequest],
    batch_size: int,
    on_progress: Callable[[int], None] | None = None,
) -> list[Generation]:
    """Each request's greedy continuation, cut before its first stop sequence, in request order.

    `on_progress` receives the number of requests finished after each batch.
    """
    contexts = [_encode_context(tokenizer, request.context) for request in requests]
    # Longest contexts first keeps padding within a batch low.
    order = sorted(range(len(contexts)), key=lambda index: -len(contexts[index]))
    pad_id = _pad_token_id(tokenizer)
    generations = [Generation("", 0, 0.0) for _ in requests]
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            batch_generations = _generate_batch(
                model,
                tokenizer,
                [contexts[index] for index in batch],
                [requests[index] for index in batch],
                pad_id,
            )
            for index, generation in zip(batch, batch_generations, strict=True):
                generations[index] = generation
            if on_progress is not None:
                on_progress(len(batch))
    return generations


def _encode_context(tokenizer: PreTrainedTokenizerBase, context: str) -> list[int]:
    """The context's ids as given (generate_until keeps trailing whitespace); BOS if empty."""
    ids = list(tokenizer(context).input_ids)
    return ids or empty_context_ids(tokenizer)


@dataclass
class _Row:
    """One request's decoding so far: its tokens, their log-probs, and the text after each."""

    request: GenerationRequest
    token_ids: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    texts: list[str] = field(default_factory=lambda: [""])  # texts[k] decodes token_ids[:k]

    def add(self, token_id: int, logprob: float, tokenizer: PreTrainedTokenizerBase) -> bool:
        """Append a token; return whether the row is finished (a stop appeared, or no budget)."""
        self.token_ids.append(token_id)
        self.logprobs.append(logprob)
        # lm-evaluation-harness decodes answers without special tokens, and checks stops on text.
        text = tokenizer.decode(self.token_ids, skip_special_tokens=True)
        self.texts.append(text)
        is_stopped = any(stop and stop in text for stop in self.request.stop)
        return is_stopped or len(self.token_ids) >= self.request.max_new_tokens

    def result(self) -> Generation:
        """The text before the earliest stop, and the tokens that spell it out.

        After a stop, those are the fewest tokens whose decoding starts with the text, so the
        token that completed the stop is dropped unless it also carries text before the stop.
        """
        text = self.texts[-1]
        cuts = [text.find(stop) for stop in self.request.stop if stop and stop in text]
        if not cuts:
            return Generation(text, len(self.token_ids), sum(self.logprobs, 0.0))
        text = text[: min(cuts)]
        kept = next(count for count, prefix in enumerate(self.texts) if prefix.startswith(text))
        return Generation(text=text, token_count=kept, logprob=sum(self.logprobs[:kept], 0.0))


def _generate_batch(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    contexts: list[list[int]],
    requests: list[GenerationRequest],
    pad_id: int,
) -> list[Generation]:
    """Greedy generations of one batch: one forward for the prompts, then one per new token."""
    device = next(model.parameters()).device
    cache = DynamicCache(config=model.config)
    rows = [_Row(request) for request in requests]
    active = [index for index, request in enumerate(requests) if request.max_new_tokens > 0]
    input_ids, attention_mask = left_pad([contexts[index] for index in active], pad_id, device)
    position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    while active:
        tokens, logprobs = _next_tokens(model, cache, input_ids, attention_mask, position_ids)
        running = []
        steps = zip(tokens.tolist(), logprobs.tolist(), strict=True)
        for position, (token, logprob) in enumerate(steps):
            is_eos = token == tokenizer.eos_token_id
            if not is_eos and not rows[active[position]].add(token, logprob, tokenizer):
                running.append(position)
        keep = torch.tensor(running, dtype=torch.long, device=device)
        if len(running) < len(active):
            cache.batch_select_indices(keep)
        active = [active[position] for position in running]
        input_ids = tokens[keep, None]
        attention_mask = torch.cat([attention_mask[keep], attention_mask.new_ones(len(keep), 1)], 1)
        position_ids = position_ids[keep, -1:] + 1
    return [row.result() for row in rows]


def _next_tokens(
    model: nn.Module,
    cache: DynamicCache,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    position_ids: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each row's argmax next token after `input_ids` and its log-probability (float32, or
    float64 for a float64 model), (rows,)."""
    output = model(
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=position_ids,
        use_cache=True,
        logits_to_keep=1,
        **{_cache_keyword(model): cache},
    )
    logits = widened(output.logits[:, -1])
    tokens = logits.argmax(dim=-1)
    logprobs = torch.log_softmax(logits, dim=-1).gather(-1, tokens[:, None])[:, 0]
    return tokens, logprobs
