"""Perplexity against an independent per-window, per-token float64 loop on a tiny random Llama."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from transformers import PreTrainedTokenizerFast

from jdspec.eval.perplexity import perplexity, squad_passages, token_windows
from tests.helpers import CORPUS, tiny_llama, train_tokenizer

TEXTS = list(CORPUS) * 4


@pytest.fixture(scope="module")
def tokenizer() -> PreTrainedTokenizerFast:
    return train_tokenizer(CORPUS, adds_bos=True)


def _reference(model: torch.nn.Module, ids: list[int], seq_len: int) -> float:
    """One window at a time, one predicted token at a time, log-softmax in float64."""
    nll, count = 0.0, 0
    for start in range(0, len(ids) - seq_len + 1, seq_len):
        window = torch.tensor([ids[start : start + seq_len]])
        with torch.no_grad():
            logits = model(input_ids=window).logits[0].double().numpy()  # (seq_len, vocab)
        for position in range(seq_len - 1):
            row = logits[position]
            log_normalizer = row.max() + np.log(np.exp(row - row.max()).sum())
            nll -= row[ids[start + position + 1]] - log_normalizer
            count += 1
    return math.exp(nll / count)


@pytest.mark.parametrize(("seq_len", "batch_size"), [(16, 1), (16, 3), (37, 2), (64, 8)])
def test_matches_independent_loop(
    tokenizer: PreTrainedTokenizerFast, seq_len: int, batch_size: int
) -> None:
    model = tiny_llama(len(tokenizer), seed=1)
    ids = tokenizer("\n\n".join(TEXTS), add_special_tokens=False)["input_ids"]
    assert len(ids) % seq_len  # a remainder exists and must be dropped
    expected = _reference(model, ids, seq_len)
    got = perplexity(model, tokenizer, TEXTS, seq_len=seq_len, batch_size=batch_size)
    assert got == pytest.approx(expected, rel=1e-6)


def test_windows_cut_without_special_tokens_and_drop_remainder(
    tokenizer: PreTrainedTokenizerFast,
) -> None:
    ids = tokenizer("\n\n".join(TEXTS), add_special_tokens=False)["input_ids"]
    windows = token_windows(tokenizer, TEXTS, seq_len=10)
    assert windows.shape == (len(ids) // 10, 10)
    assert windows.flatten().tolist() == ids[: windows.numel()]
    assert token_windows(tokenizer, TEXTS, seq_len=10, max_windows=3).tolist() == (
        windows[:3].tolist()
    )


def test_max_windows_scores_the_first_windows(tokenizer: PreTrainedTokenizerFast) -> None:
    model = tiny_llama(len(tokenizer), seed=2)
    ids = tokenizer("\n\n".join(TEXTS), add_special_tokens=False)["input_ids"]
    expected = _reference(model, ids[: 2 * 16], 16)
    got = perplexity(model, tokenizer, TEXTS, seq_len=16, batch_size=4, max_windows=2)
    assert got == pytest.approx(expected, rel=1e-6)


def test_too_short_text_raises(tokenizer: PreTrainedTokenizerFast) -> None:
    model = tiny_llama(len(tokenizer), seed=3)
    with pytest.raises(ValueError, match="fewer than one window"):
        perplexity(model, tokenizer, ["Paris"], seq_len=64, batch_size=1)
    with pytest.raises(ValueError, match="seq_len >= 2"):
        perplexity(model, tokenizer, TEXTS, seq_len=1, batch_size=1)


def test_squad_passages_are_unique_sorted_and_clean() -> None:
    passages = squad_passages()
    assert len(passages) == len(set(passages)) > 500
    assert passages == sorted(passages)
    assert not any("\nQuestion: " in passage or "Background: " in passage for passage in passages)
    assert all(passage.strip() for passage in passages)
