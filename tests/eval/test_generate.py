"""Cached, batched greedy generation against an uncached one-request-at-a-time reference.

The models run in float64: greedy decoding takes an argmax, and on a random model two logits
can lie closer than float32's rounding, so batching (another summation order) could pick the
other token. In float64 the orders agree to about 1e-15.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from transformers import (
    PreTrainedTokenizerBase,
    PreTrainedTokenizerFast,
)

from jdspec.eval.generate import generate_greedy
from jdspec.eval.requests import Generation, GenerationRequest
from tests.helpers import CORPUS, tiny_causal_lm, tiny_llama, train_tokenizer

# Contexts of 1 to 12 tokens, out of length order; the longest spans three sliding windows.
CONTEXTS = (
    "Answer: ",
    "The capital of France is",
    "",
    "Question: what is two plus two? Answer:",
    "A",
)
STOP_CONTEXT = "The capital of France is Paris."


@pytest.fixture(scope="module")
def tokenizer() -> PreTrainedTokenizerFast:
    return train_tokenizer(CORPUS, adds_bos=True)


@pytest.fixture(scope="module")
def llama(tokenizer: PreTrainedTokenizerFast) -> nn.Module:
    return tiny_llama(len(tokenizer)).double()


def _reference(
    model: nn.Module, tokenizer: PreTrainedTokenizerBase, context: str, max_new_tokens: int
) -> tuple[list[int], list[float]]:
    """Greedy ids and float64 log-probs of one context alone: a full uncached forward per step."""
    context_ids = tokenizer(context).input_ids or [tokenizer.bos_token_id]
    new_ids: list[int] = []
    logprobs: list[float] = []
    for _ in range(max_new_tokens):
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([context_ids + new_ids])).logits[0, -1].double()
        token = int(logits.argmax())
        if token == tokenizer.eos_token_id:
            break
        new_ids.append(token)
        logprobs.append(torch.log_softmax(logits, dim=-1)[token].item())
    return new_ids, logprobs


def _decode(tokenizer: PreTrainedTokenizerBase, ids: list[int]) -> str:
    return tokenizer.decode(ids, skip_special_tokens=True)


def _expected(
    tokenizer: PreTrainedTokenizerBase, ids: list[int], logprobs: list[float], count: int
) -> Generation:
    """The generation that keeps the reference's first `count` tokens."""
    return Generation(_decode(tokenizer, ids[:count]), count, sum(logprobs[:count]))


def _assert_same(actual: list[Generation], expected: list[Generation]) -> None:
    assert [(g.text, g.token_count) for g in actual] == [(g.text, g.token_count) for g in expected]
    for generation, reference in zip(actual, expected, strict=True):
        assert generation.logprob == pytest.approx(reference.logprob, abs=1e-10, rel=0)


@pytest.mark.parametrize("architecture", ["llama", "gemma3", "gpt2"])
def test_matches_uncached_reference(
    tokenizer: PreTrainedTokenizerFast, llama: nn.Module, architecture: str
) -> None:
    model = llama if architecture == "llama" else tiny_causal_lm(architecture, len(tokenizer))
    model = model.double()
    requests = [
        GenerationRequest(context, stop=(), max_new_tokens=6 + 2 * index)
        for index, context in enumerate(CONTEXTS)
    ]
    expected = []
    for request in requests:
        ids, logprobs = _reference(model, tokenizer, request.context, request.max_new_tokens)
        expected.append(_expected(tokenizer, ids, logprobs, len(ids)))
    _assert_same(generate_greedy(model, tokenizer, requests, batch_size=3), expected)


def _appended_pieces(tokenizer: PreTrainedTokenizerBase, ids: list[int]) -> dict[int, str]:
    """Token index -> the printable ASCII text that token appends to the decoding before it."""
    texts = [_decode(tokenizer, ids[:count]) for count in range(len(ids) + 1)]
    pieces = {}
    for index in range(len(ids)):
        piece = texts[index + 1][len(texts[index]) :]
        if piece.isascii() and piece.isprintable() and texts[index + 1] == texts[index] + piece:
            pieces[index] = piece
    return {index: piece for index, piece in pieces.items() if piece}


def test_stop_sequences(tokenizer: PreTrainedTokenizerFast, llama: nn.Module) -> None:
    ids, logprobs = _reference(llama, tokenizer, STOP_CONTEXT, 10)
    text = _decode(tokenizer, ids)
    pieces = _appended_pieces(tokenizer, ids)
    # A whole token's text, first seen at that token: the answer is cut right before the token.
    token_index = next(
        index
        for index, piece in pieces.items()
        if index - 1 in pieces and piece not in _decode(tokenizer, ids[:index]) + piece[:-1]
    )
    token_stop = pieces[token_index]
    # The last character of a longer token and the first of the next: the stop spans two tokens.
    span_index = next(
        index
        for index, piece in pieces.items()
        if len(pieces.get(index - 1, "")) > 1
        and pieces[index - 1][-1] + piece[0] not in _decode(tokenizer, ids[:index])
    )
    span_stop = pieces[span_index - 1][-1] + pieces[span_index][0]
    assert text.find(span_stop) != text.find(token_stop)
    first_stop, second_stop = sorted((token_stop, span_stop), key=text.find)
    requests = [
        GenerationRequest(STOP_CONTEXT, stop=("\n", token_stop), max_new_tokens=10),
        GenerationRequest(STOP_CONTEXT, stop=(span_stop,), max_new_tokens=10),
        GenerationRequest(STOP_CONTEXT, stop=(second_stop, first_stop), max_new_tokens=10),
        GenerationRequest(STOP_CONTEXT, stop=(text[0],), max_new_tokens=10),
    ]
    token_cut = _expected(tokenizer, ids, logprobs, token_index)
    span_text = _decode(tokenizer, ids[:span_index])[:-1]
    span_cut = Generation(span_text, span_index, sum(logprobs[:span_index]))
    earliest_cut = token_cut if first_stop == token_stop else span_cut
    expected = [token_cut, span_cut, earliest_cut, Generation("", 0, 0.0)]
    generations = generate_greedy(llama, tokenizer, requests, batch_size=4)
    _assert_same(generations, expected)
    assert generations[3].logprob == 0.0


def test_max_new_tokens_per_request(tokenizer: PreTrainedTokenizerFast, llama: nn.Module) -> None:
    ids, logprobs = _reference(llama, tokenizer, STOP_CONTEXT, 6)
    budgets = (1, 6, 0, 3)
    requests = [GenerationRequest(STOP_CONTEXT, stop=(), max_new_tokens=n) for n in budgets]
    generations = generate_greedy(llama, tokenizer, requests, batch_size=4)
    _assert_same(generations, [_expected(tokenizer, ids, logprobs, n) for n in budgets])


def test_finished_rows_leave_the_batch(
    tokenizer: PreTrainedTokenizerFast, llama: nn.Module
) -> None:
    rows_per_forward: list[int] = []

    def record(module: nn.Module, args: tuple, kwargs: dict) -> None:
        rows_per_forward.append(kwargs["input_ids"].shape[0])

    handle = llama.register_forward_pre_hook(record, with_kwargs=True)
    requests = [
        GenerationRequest(STOP_CONTEXT, stop=(), max_new_tokens=1),
        GenerationRequest("A", stop=(), max_new_tokens=4),
    ]
    try:
        generate_greedy(llama, tokenizer, requests, batch_size=2)
    finally:
        handle.remove()
    assert rows_per_forward == [2, 1, 1, 1]


def test_eos_ends_the_answer_and_is_not_kept(
    tokenizer: PreTrainedTokenizerFast, llama: nn.Module
) -> None:
    ids, logprobs = _reference(llama, tokenizer, STOP_CONTEXT, 6)
    eos_index = 2
    stopping = copy.deepcopy(tokenizer)
    stopping.eos_token = tokenizer.convert_ids_to_tokens(ids[eos_index])
    count = ids.index(ids[eos_index])
    request = GenerationRequest(STOP_CONTEXT, stop=(), max_new_tokens=6)
    generations = generate_greedy(llama, stopping, [request], batch_size=1)
    _assert_same(generations, [_expected(tokenizer, ids, logprobs, count)])


def test_request_order_and_batch_size_do_not_matter(
    tokenizer: PreTrainedTokenizerFast, llama: nn.Module
) -> None:
    requests = [GenerationRequest(context, max_new_tokens=8) for context in CONTEXTS]
    progress: list[int] = []
    batched = generate_greedy(llama, tokenizer, requests, 4, on_progress=progress.append)
    alone = generate_greedy(llama, tokenizer, requests, 1)
    backward = generate_greedy(llama, tokenizer, requests[::-1], 2)[::-1]
    assert [g.text for g in batched] == [g.text for g in alone] == [g.text for g in backward]
    assert [g.token_count for g in batched] == [g.token_count for g in alone]
    assert progress == [4, 1] and sum(progress) == len(requests)
